// tf_raw_submit: sends one SubmitSuite request, written as the proto's JSON
// on standard input, straight to a coordinator, skipping every check
// coordctl makes: what a hostile or buggy client can send. Prints the
// answer's status code and message on one line; exits 0 when the suite was
// taken, 1 when refused, 2 on bad usage.
//   echo '{"suite": {"name": "x", "tests": [...]}}' | tf_raw_submit HOST:PORT
#include <iostream>
#include <iterator>
#include <string>

#include "common/grpc_util.h"
#include "google/protobuf/util/json_util.h"
#include "testfleet/v1/services.grpc.pb.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: tf_raw_submit HOST:PORT < request.json\n";
    return 2;
  }
  const std::string json((std::istreambuf_iterator<char>(std::cin)),
                         std::istreambuf_iterator<char>());
  testfleet::v1::SubmitSuiteRequest request;
  const auto parsed =
      google::protobuf::util::JsonStringToMessage(json, &request);
  if (!parsed.ok()) {
    std::cerr << "tf_raw_submit: not a SubmitSuiteRequest: "
              << parsed.ToString() << "\n";
    return 2;
  }
  auto stub =
      testfleet::v1::Coordinator::NewStub(testfleet::MakeChannel(argv[1]));
  grpc::ClientContext context;
  context.set_deadline(testfleet::DeadlineIn(absl::Seconds(30)));
  testfleet::v1::SubmitSuiteResponse response;
  const grpc::Status status = stub->SubmitSuite(&context, request, &response);
  if (status.ok()) {
    std::cout << "taken as suite " << response.suite_id() << "\n";
    return 0;
  }
  std::cout << "refused (gRPC code " << status.error_code()
            << "): " << status.error_message() << "\n";
  return 1;
}
