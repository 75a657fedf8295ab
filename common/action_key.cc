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

}  // namespace

v1::ActionKey ComputeActionKey(const v1::TestSpec& spec,
                               const v1::Platform& platform) {
  v1::ActionKey key;
  CanonicalEncoder encoder;
  encoder.Field('V', kEncodingVersion);
  encoder.Field('n', std::to_string(spec.argv_size()));
  for (const std::string& arg : spec.argv()) {
    encoder.Field('a', arg);
    key.add_argv(arg);
  }
  encoder.Field('c', spec.cwd());
  key.set_cwd(spec.cwd());

  std::map<std::string, std::string> env(spec.env().begin(), spec.env().end());
  for (const auto& [name, value] : env) {
    encoder.Field('e', name);
    encoder.Field('v', value);
    (*key.mutable_env())[name] = value;
  }

  std::vector<const v1::InputDigest*> inputs;
  for (const v1::InputDigest& input : spec.inputs()) inputs.push_back(&input);
  std::sort(inputs.begin(), inputs.end(),
            [](const v1::InputDigest* a, const v1::InputDigest* b) {
              return a->path() < b->path();
            });
  for (const v1::InputDigest* input : inputs) {
    encoder.Field('p', input->path());
    encoder.Field('h', input->sha256());
    *key.add_inputs() = *input;
  }

  encoder.Field('o', platform.os());
  encoder.Field('r', platform.arch());
  encoder.Field('t', platform.tag());
  *key.mutable_platform() = platform;

  key.set_hex(encoder.FinishHex());
  return key;
}

}  // namespace testfleet
