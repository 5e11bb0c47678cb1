// DeferredImage: opened on first use, once, by any number of threads; a failed open fails
// every call with its error and nothing else.
#include "imagefs/deferred_image.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "imagefs/image_loader.h"
#include "support/test_support.h"

namespace ferry::imagefs {
namespace {

class DeferredImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "src");
    std::ofstream(dir_ / "src/hello") << "hello, deferred\n";
    std::string out;
    ASSERT_EQ(test::run_shell("mkfs.erofs --quiet '" + image_ + "' '" + std::string(dir_ / "src") + "'", &out), 0)
        << out;
  }
  DeferredImage::Opener opener() {
    return [this]() -> Result<std::shared_ptr<const erofs::ErofsImage>> {
      opens_.fetch_add(1);
      return open_image(image_, BackendConfig{});
    };
  }

  test::TempDir dir_;
  std::string image_ = dir_ / "image.erofs";
  std::atomic<int> opens_{0};
};

TEST_F(DeferredImageTest, OpensOnFirstUseOnceAndServesLikeTheImage) {
  DeferredImage deferred(opener());
  EXPECT_EQ(opens_.load(), 0) << "constructing must not open";
  EXPECT_FALSE(deferred.attempted());
  std::vector<std::thread> threads;
  std::atomic<int> found{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto root = deferred.inode(deferred.superblock().root_nid);
      if (!root.ok()) return;
      if (deferred.lookup(*root, "hello").ok()) found.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(opens_.load(), 1);
  EXPECT_EQ(found.load(), 8);
  EXPECT_TRUE(deferred.attempted());
  auto root = deferred.inode(deferred.superblock().root_nid);
  ASSERT_TRUE(root.ok());
  auto nid = deferred.lookup(*root, "hello");
  ASSERT_TRUE(nid.ok());
  auto file = deferred.inode(*nid);
  ASSERT_TRUE(file.ok());
  std::string bytes(64, '\0');
  auto n = deferred.read(*file, 0, std::as_writable_bytes(std::span(bytes)));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(bytes.substr(0, *n), "hello, deferred\n");
  EXPECT_TRUE(deferred.prepare().ok());
  EXPECT_EQ(opens_.load(), 1);
}

TEST_F(DeferredImageTest, AFailedOpenFailsEveryCallWithItsErrorAndIsNotRetried) {
  std::filesystem::remove(image_);
  DeferredImage deferred(opener());
  auto st = deferred.prepare();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ENOENT) << st.error().message;
  EXPECT_EQ(deferred.superblock().root_nid, 0U);
  EXPECT_TRUE(deferred.devices().empty());
  auto inode = deferred.inode(0);
  ASSERT_FALSE(inode.ok());
  EXPECT_EQ(inode.error().message, st.error().message);
  EXPECT_EQ(opens_.load(), 1);
  // Not retried, even once the file is back: a daemon must not flip between two answers.
  SetUp();
  EXPECT_FALSE(deferred.prepare().ok());
  EXPECT_EQ(opens_.load(), 1);
}

}  // namespace
}  // namespace ferry::imagefs
