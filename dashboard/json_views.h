#pragma once
// What the dashboard's JSON API says about the coordinator's types (fields
// in docs/dashboard.md). Pure functions, tested without a server.

#include <string>

#include "nlohmann/json.hpp"
#include "testfleet/v1/services.pb.h"

namespace testfleet {

/// How much of a failing test's stderr (its end) the dashboard carries.
inline constexpr size_t kStderrTailBytes = 4096;

/// JSON as text; bytes that are not UTF-8 become U+FFFD instead of throwing.
std::string JsonText(const nlohmann::json& json);

std::string SuiteStateName(v1::SuiteState state);
nlohmann::json SummaryJson(const v1::SuiteSummary& summary);
nlohmann::json ProgressJson(const v1::SuiteProgress& progress);
nlohmann::json ListingJson(const v1::SuiteListing& listing);
/// A worker with its slots' current tests; `now_unix_ms` makes their
/// running times.
nlohmann::json WorkerJson(const v1::WorkerInfo& worker, int64_t now_unix_ms);
/// One finished test, compact: the fields a row, the timeline and a failure
/// need ("i": its position among the suite's results). Output tails only
/// for failures, their last kStderrTailBytes.
nlohmann::json ResultRowJson(const v1::TestResult& result, size_t index);
/// A test's history: one entry per kept run, oldest first, and its insight.
nlohmann::json HistoryJson(const v1::HistoryResponse::Entry& entry);
nlohmann::json ExplainJson(const v1::ExplainResponse& explain);
nlohmann::json CacheJson(const v1::CacheStats& stats);

}  // namespace testfleet
