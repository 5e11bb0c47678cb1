#include <gtest/gtest.h>

#include "oci/bootstrap_layer.h"
#include "oci/file_util.h"
#include "support/test_support.h"

namespace ferry::oci {
namespace {

TEST(BootstrapLayer, GnuTarReadsTheLayerBackByteForByte) {
  test::TempDir tmp;
  for (const size_t size : {size_t{0}, size_t{1}, size_t{512}, size_t{4096 * 3 + 17}}) {
    std::string boot(size, '\0');
    for (size_t i = 0; i < size; ++i) boot[i] = static_cast<char>(i * 131 + 7);
    ASSERT_TRUE(write_file_atomic(tmp / "boot", boot).ok());
    auto diff_id = write_bootstrap_tar(tmp / "boot", tmp / "layer.tar");
    ASSERT_TRUE(diff_id.ok()) << diff_id.error().message;
    EXPECT_EQ(*diff_id, digest_file(tmp / "layer.tar")->digest);
    std::string listing;
    ASSERT_EQ(test::run_shell("tar -tvf " + tmp / "layer.tar", &listing), 0) << listing;
    EXPECT_NE(listing.find("drwxr-xr-x root/root"), std::string::npos) << listing;
    EXPECT_NE(listing.find("-rw-r--r-- root/root"), std::string::npos) << listing;
    EXPECT_NE(listing.find("image/image.boot"), std::string::npos) << listing;
    ASSERT_EQ(test::run_shell("mkdir -p " + tmp / "x" + " && tar -xf " + tmp / "layer.tar" + " -C " + tmp / "x"), 0);
    EXPECT_EQ(test::read_file(tmp / "x/image/image.boot"), boot) << size;
    // Deterministic: the same bootstrap, the same diff_id.
    EXPECT_EQ(*write_bootstrap_tar(tmp / "boot", tmp / "again.tar"), *diff_id);
  }
  EXPECT_EQ(write_bootstrap_tar(tmp / "absent", tmp / "t.tar").error().code, ENOENT);
}

}  // namespace
}  // namespace ferry::oci
