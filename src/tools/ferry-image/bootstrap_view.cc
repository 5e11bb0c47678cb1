#include "tools/ferry-image/bootstrap_view.h"

#include <sys/stat.h>

#include <set>
#include <utility>
#include <vector>

#include "storage/local_file.h"

namespace ferry::image_tool {
namespace {

// A blob device that is not read here: reads fail, naming it.
class AbsentDevice final : public ByteSource {
 public:
  AbsentDevice(std::string name, uint64_t size) : name_(std::move(name)), size_(size) {}
  [[nodiscard]] uint64_t size() const override { return size_; }
  Status read_exact(uint64_t /*offset*/, std::span<std::byte> /*out*/) const override {
    return Error{ENODATA, "blob '" + name_ + "' is not read by this command"};
  }
  [[nodiscard]] const std::string& name() const override { return name_; }

 private:
  std::string name_;
  uint64_t size_;
};

}  // namespace

Result<BootstrapView> open_bootstrap(const std::string& path) {
  BootstrapView view;
  FERRY_ASSIGN(auto file, storage::LocalFile::open(path, /*map=*/true));
  view.file = file;
  auto resolve = [](const erofs::DeviceSlot& slot) -> Result<std::shared_ptr<const ByteSource>> {
    return std::shared_ptr<const ByteSource>(std::make_shared<AbsentDevice>(
        slot.tag.empty() ? "device " + std::to_string(slot.device_id) : slot.tag,
        slot.blocks * erofs::kFerryBlockSize));
  };
  FERRY_ASSIGN(view.image, erofs::ErofsImage::open(view.file, resolve));
  FERRY_ASSIGN(view.table, erofs::load_chunk_table(*view.file));
  if (view.table) FERRY_TRY(erofs::check_chunk_table_devices(*view.table, view.image->devices()));
  return view;
}

Status walk_tree(const erofs::ErofsImage& image,
                 const std::function<Status(const std::string&, const erofs::Inode&)>& visit) {
  std::function<Status(uint64_t, const std::string&)> walk = [&](uint64_t nid,
                                                                 const std::string& path) -> Status {
    FERRY_ASSIGN(erofs::Inode dir, image.inode(nid));
    std::vector<std::pair<std::string, uint64_t>> children;
    FERRY_TRY(image.read_dir(dir, 0, [&](const erofs::DirEntry& e) {
      if (e.name != "." && e.name != "..") children.emplace_back(std::string(e.name), e.nid);
      return true;
    }));
    for (const auto& [name, child_nid] : children) {
      FERRY_ASSIGN(erofs::Inode in, image.inode(child_nid));
      const std::string child = path + "/" + name;
      FERRY_TRY(visit(child, in));
      if (S_ISDIR(in.mode)) FERRY_TRY(walk(child_nid, child));
    }
    return {};
  };
  return walk(image.superblock().root_nid, "");
}

Result<ChunkReferences> count_references(const erofs::ErofsImage& image, const erofs::ChunkTable& table) {
  std::set<uint64_t> files_seen;
  std::set<const erofs::ChunkInfo*> used;
  ChunkReferences r;
  FERRY_TRY(walk_tree(image, [&](const std::string& path, const erofs::Inode& in) -> Status {
    if (!S_ISREG(in.mode) || !files_seen.insert(in.nid).second) return {};
    ++r.files;
    FERRY_ASSIGN(auto places, erofs::chunk_places(image, in));
    for (const auto& p : places) {
      if (p.blkaddr == 0xFFFFFFFFU) {
        ++r.holes;
        continue;
      }
      const uint64_t offset = uint64_t{p.blkaddr} * erofs::kFerryBlockSize;
      const erofs::ChunkInfo* c = table.find(p.device_id, offset);
      if (c == nullptr || c->device_offset != offset) {
        return Error{EIO, "'" + path + "' points at device " + std::to_string(p.device_id) + " block " +
                              std::to_string(p.blkaddr) + ", where no chunk starts"};
      }
      ++r.refs;
      r.ref_bytes += c->size;
      if (!used.insert(c).second) r.dedup_saved += c->size;
    }
    return {};
  }));
  r.chunks_used = used.size();
  return r;
}

}  // namespace ferry::image_tool
