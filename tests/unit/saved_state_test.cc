// The state a ferryd hands to its successor: round trips, refusals, and compatibility with
// states written by earlier builds (tests/fixtures/saved_state_v1.bin, written by the first
// version that saved state; every later build must still read it).
#include "daemon/saved_state.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "ipc/state_envelope.h"

namespace ferry::daemon {
namespace {

const char* kFixture = FERRY_SOURCE_DIR "/tests/fixtures/saved_state_v1.bin";

// The content of the fixture, field by field.
SavedState fixture_state() {
  SavedState s;
  s.daemon_id = "daemon-fixture";
  s.mountpoint = "/run/ferry/mnt/fixture";
  s.fuse.major = 7;
  s.fuse.minor = 40;
  s.fuse.kernel_minor = 45;
  s.fuse.kernel_flags = 0x73fffffbULL | fuse::kInitHasResend;
  s.fuse.flags = 0x4008e9dULL;
  s.fuse.max_readahead = 131072;
  s.fuse.max_write = 131072;
  s.fuse.max_pages = 256;
  s.fuse.max_background = 64;
  s.fuse.congestion_threshold = 48;
  s.fuse.time_gran = 1;
  s.images = {
      {1, "", "/var/lib/ferry/images/app.erofs",
       R"({"device":{"backend":{"type":"localfs","config":{"blob_file":"/var/lib/ferry/blobs/app"}}}})",
       1795600000, false},
      {7, "old", "/var/lib/ferry/images/old.erofs", "", 1795600100, true}};
  s.next_slot = 8;
  s.failover_policy = "resend";
  s.pid = 4242;
  s.pid_start_time = 123456;
  s.version = "0.1.0";
  s.saved_at_unix_ms = 1795611002000;
  return s;
}

std::vector<std::byte> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(chars.size());
  std::memcpy(out.data(), chars.data(), chars.size());
  return out;
}

TEST(SavedState, RoundTripsEveryField) {
  SavedState s = fixture_state();
  auto decoded = decode_state(encode_state(s));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(*decoded, s);
}

TEST(SavedState, TheFirstVersionsFixtureStillDecodes) {
  auto bytes = read_bytes(kFixture);
  ASSERT_FALSE(bytes.empty()) << "missing fixture " << kFixture;
  auto decoded = decode_state(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(*decoded, fixture_state());
  EXPECT_TRUE(decoded->fuse.kernel_can_resend());
}

TEST(SavedState, AStateWithoutNegotiatedInitIsRefused) {
  SavedState s = fixture_state();
  s.fuse = {};
  auto decoded = decode_state(encode_state(s));
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.error().message.find("FUSE"), std::string::npos) << decoded.error().message;
}

TEST(SavedState, ANewerEnvelopeVersionIsRefusedByName) {
  std::vector<std::byte> sealed = encode_state(fixture_state());  // opened's payload points into it
  auto opened = ipc::open_envelope(sealed, kStateFormatVersion);
  ASSERT_TRUE(opened.ok());
  std::vector<std::byte> payload(opened->payload.begin(), opened->payload.end());
  auto decoded = decode_state(ipc::seal(payload, kStateFormatVersion + 1));
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.error().message.find(std::to_string(kStateFormatVersion + 1)), std::string::npos)
      << decoded.error().message;
}

TEST(SavedState, APayloadThatIsNotAStateIsRefused) {
  std::string junk = "\xff\xff\xff\xff this is not protobuf";
  auto decoded =
      decode_state(ipc::seal(std::as_bytes(std::span(junk.data(), junk.size())), kStateFormatVersion));
  EXPECT_FALSE(decoded.ok());
}

// Regenerates the fixture. Run only by hand, when deliberately adding a new fixture version:
//   build/bin/saved_state_test --gtest_also_run_disabled_tests --gtest_filter='*WriteFixture*'
TEST(SavedState, DISABLED_WriteFixture) {
  auto bytes = encode_state(fixture_state());
  std::ofstream(kFixture, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace
}  // namespace ferry::daemon
