#include "common/action_key.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "common/digest.h"

namespace testfleet {
namespace {

// Each field is a one-byte tag, an 8-byte little-endian length and the bytes,
// so no two different actions share an encoding.
class CanonicalEncoder {
 public:
  void Field(char tag, const std::string& bytes) {
    hasher_.Update(absl::string_view(&tag, 1));
    char len[8];
    uint64_t n = bytes.size();
    for (int i = 0; i < 8; ++i)
      len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    hasher_.Update(absl::string_view(len, 8));
    hasher_.Update(bytes);
  }
  std::string FinishHex() { return hasher_.FinishHex(); }

 private:
  Sha256Hasher hasher_;
};

constexpr char kEncodingVersion[] = "testfleet-action-v1";

// Walks the key's fields in their canonical order: into `encoder` (the hex)
// and as parts into `key`, each when given.
void WalkActionKey(const v1::TestSpec& spec, const v1::Platform& platform,
                   CanonicalEncoder* encoder, v1::ActionKey* key) {
  auto field = [encoder](char tag, const std::string& bytes) {
    if (encoder != nullptr) encoder->Field(tag, bytes);
  };
  field('V', kEncodingVersion);
  field('n', std::to_string(spec.argv_size()));
  for (const std::string& arg : spec.argv()) {
    field('a', arg);
    if (key != nullptr) key->add_argv(arg);
  }
  field('c', spec.cwd());
  if (key != nullptr) key->set_cwd(spec.cwd());

  using EnvEntry = google::protobuf::Map<std::string, std::string>::value_type;
  std::vector<const EnvEntry*> env;
  env.reserve(spec.env_size());
  for (const auto& entry : spec.env()) env.push_back(&entry);
  std::sort(env.begin(), env.end(), [](const EnvEntry* a, const EnvEntry* b) {
    return a->first < b->first;
  });
  for (const EnvEntry* entry : env) {
    field('e', entry->first);
    field('v', entry->second);
    if (key != nullptr) (*key->mutable_env())[entry->first] = entry->second;
  }

  std::vector<const v1::InputDigest*> inputs;
  inputs.reserve(spec.inputs_size());
  for (const v1::InputDigest& input : spec.inputs()) inputs.push_back(&input);
  std::sort(inputs.begin(), inputs.end(),
            [](const v1::InputDigest* a, const v1::InputDigest* b) {
              return a->path() < b->path();
            });
  for (const v1::InputDigest* input : inputs) {
    field('p', input->path());
    field('h', input->sha256());
    if (key != nullptr) *key->add_inputs() = *input;
  }

  // Only when set, so the keys of every other test stay as they were: a
  // test that caches its failures must not be served by (or serve) one
  // that does not.
  if (spec.cache_failures()) field('f', "cache_failures");
  // Likewise: a result lists the outputs its test declared.
  for (const std::string& output : spec.outputs()) field('O', output);

  field('o', platform.os());
  field('r', platform.arch());
  field('t', platform.tag());
  if (key != nullptr) *key->mutable_platform() = platform;
}

}  // namespace

v1::ActionKey ComputeActionKey(const v1::TestSpec& spec,
                               const v1::Platform& platform) {
  v1::ActionKey key;
  CanonicalEncoder encoder;
  WalkActionKey(spec, platform, &encoder, &key);
  key.set_hex(encoder.FinishHex());
  return key;
}

std::string ActionKeyHex(const v1::TestSpec& spec,
                         const v1::Platform& platform) {
  CanonicalEncoder encoder;
  WalkActionKey(spec, platform, &encoder, nullptr);
  return encoder.FinishHex();
}

v1::ActionKey ActionKeyWithHex(const v1::TestSpec& spec,
                               const v1::Platform& platform, std::string hex) {
  v1::ActionKey key;
  WalkActionKey(spec, platform, nullptr, &key);
  key.set_hex(std::move(hex));
  return key;
}

bool Cacheable(const v1::TestSpec& spec, const v1::TestResult& result) {
  return result.status() == v1::TEST_STATUS_PASSED ||
         (spec.cache_failures() && result.status() == v1::TEST_STATUS_FAILED);
}

std::vector<std::string> DescribeKeyChanges(const v1::ActionKey& before,
                                            const v1::ActionKey& after) {
  std::vector<std::string> changes;
  auto quoted = [](const std::string& s) { return "\"" + s + "\""; };
  const int argc = std::max(before.argv_size(), after.argv_size());
  for (int i = 0; i < argc; ++i) {
    const std::string name = "argv[" + std::to_string(i) + "]";
    if (i >= before.argv_size()) {
      changes.push_back(name + " added: " + quoted(after.argv(i)));
    } else if (i >= after.argv_size()) {
      changes.push_back(name + " removed: " + quoted(before.argv(i)));
    } else if (before.argv(i) != after.argv(i)) {
      changes.push_back(name + " changed: " + quoted(before.argv(i)) + " -> " +
                        quoted(after.argv(i)));
    }
  }
  if (before.cwd() != after.cwd()) {
    changes.push_back("cwd changed: " + quoted(before.cwd()) + " -> " +
                      quoted(after.cwd()));
  }
  std::map<std::string, std::string> old_env(before.env().begin(),
                                             before.env().end());
  std::map<std::string, std::string> new_env(after.env().begin(),
                                             after.env().end());
  for (const auto& [name, value] : old_env) {
    auto it = new_env.find(name);
    if (it == new_env.end()) {
      changes.push_back("env " + name + " removed");
    } else if (it->second != value) {
      changes.push_back("env " + name + " changed");
    }
  }
  for (const auto& [name, value] : new_env) {
    if (old_env.count(name) == 0) changes.push_back("env " + name + " added");
  }
  std::map<std::string, std::string> old_inputs, new_inputs;
  for (const auto& input : before.inputs())
    old_inputs[input.path()] = input.sha256();
  for (const auto& input : after.inputs())
    new_inputs[input.path()] = input.sha256();
  for (const auto& [path, sha] : old_inputs) {
    auto it = new_inputs.find(path);
    if (it == new_inputs.end()) {
      changes.push_back("input " + path + " removed");
    } else if (it->second != sha) {
      changes.push_back("input " + path + " changed (sha256 " +
                        sha.substr(0, 12) + " -> " + it->second.substr(0, 12) +
                        ")");
    }
  }
  for (const auto& [path, sha] : new_inputs) {
    if (old_inputs.count(path) == 0)
      changes.push_back("input " + path + " added");
  }
  const v1::Platform& a = before.platform();
  const v1::Platform& b = after.platform();
  if (a.os() != b.os())
    changes.push_back("platform os changed: " + a.os() + " -> " + b.os());
  if (a.arch() != b.arch()) {
    changes.push_back("platform arch changed: " + a.arch() + " -> " + b.arch());
  }
  if (a.tag() != b.tag()) {
    changes.push_back("platform tag changed: " + quoted(a.tag()) + " -> " +
                      quoted(b.tag()));
  }
  return changes;
}

}  // namespace testfleet
