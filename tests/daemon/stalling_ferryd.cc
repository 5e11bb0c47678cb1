// ferryd-stalling: ferryd serving its images through testkit::StallingFilesystem, so that
// READs of one file never complete, as when a daemon dies holding a request. Test-only; the
// production ferryd has no such switch.
//
// Usage: ferryd-stalling PATH fuse ARGS...   (PATH relative to the mount, e.g. d0/f3)
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "daemon/ferryd_main.h"
#include "kit/stalling_filesystem.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: ferryd-stalling PATH fuse ARGS...\n");
    return 2;
  }
  const std::string path = argv[1];
  std::vector<char*> args = {argv[0]};
  args.insert(args.end(), argv + 2, argv + argc);
  args.push_back(nullptr);
  return ferry::daemon::ferryd_main(static_cast<int>(args.size() - 1), args.data(),
                                    [path](ferry::fuse::Filesystem& images) {
                                      return std::make_unique<ferry::testkit::StallingFilesystem>(images, path);
                                    });
}
