#include "tools/ferry-image/bootstrap_view.h"

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
    return std::shared_ptr<const ByteSource>(
        std::make_shared<AbsentDevice>(slot.tag.empty() ? "device " + std::to_string(slot.device_id) : slot.tag,
                                       slot.blocks * erofs::kFerryBlockSize));
  };
  FERRY_ASSIGN(view.image, erofs::ErofsImage::open(view.file, resolve));
  FERRY_ASSIGN(view.table, erofs::load_chunk_table(*view.file));
  if (view.table) FERRY_TRY(erofs::check_chunk_table_devices(*view.table, view.image->devices()));
  return view;
}

}  // namespace ferry::image_tool
