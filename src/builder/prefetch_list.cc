#include "builder/prefetch_list.h"

#include <sys/stat.h>

#include <fstream>

namespace ferry::builder {
namespace {

class Resolver {
 public:
  explicit Resolver(const erofs::ChunkTable& table) : table_(table), listed_(table.chunks.size(), false) {}

  void add_file(const Node& file) {
    for (const ChunkRef& ref : file.chunks) {
      if (ref.device_id == 0) continue;  // a hole
      const erofs::ChunkInfo* c = table_.find(ref.device_id, uint64_t{ref.blkaddr} * erofs::kFerryBlockSize);
      if (c == nullptr) continue;  // cannot happen for a tree the builder made
      const auto index = static_cast<uint64_t>(c - table_.chunks.data());
      if (listed_[index]) continue;
      listed_[index] = true;
      if (!ranges_.empty() && ranges_.back().first_chunk + ranges_.back().chunk_count == index &&
          same_blob(ranges_.back().first_chunk, index)) {
        ++ranges_.back().chunk_count;
      } else {
        ranges_.push_back({index, 1});
      }
    }
  }

  void add_tree(const Node& node) {
    if (S_ISREG(node.mode)) {
      add_file(node);
    } else if (node.is_dir()) {
      for (const auto& [name, entry] : node.children) add_tree(*entry.node);
    }
  }

  std::vector<erofs::PrefetchRange> take() { return std::move(ranges_); }

 private:
  [[nodiscard]] bool same_blob(uint64_t a, uint64_t b) const {
    for (const auto& blob : table_.blobs) {
      const bool has_a = a >= blob.first_chunk && a - blob.first_chunk < blob.chunk_count;
      const bool has_b = b >= blob.first_chunk && b - blob.first_chunk < blob.chunk_count;
      if (has_a || has_b) return has_a && has_b;
    }
    return false;
  }

  const erofs::ChunkTable& table_;
  std::vector<bool> listed_;
  std::vector<erofs::PrefetchRange> ranges_;
};

}  // namespace

Result<std::vector<erofs::PrefetchRange>> resolve_prefetch(const Tree& tree, const erofs::ChunkTable& table,
                                                           const std::vector<std::string>& paths) {
  Resolver resolver(table);
  for (const std::string& path : paths) {
    std::string_view rel = path;
    while (!rel.empty() && rel.front() == '/') rel.remove_prefix(1);
    auto parts = split_entry_path(rel);
    if (!parts.ok()) return std::move(parts).error().context("prefetch path '" + path + "'");
    const Node* node = &tree.root();
    for (const std::string& part : *parts) {
      auto it = node->children.find(part);
      if (!node->is_dir() || it == node->children.end()) {
        return Error{ENOENT, "prefetch path '" + path + "' is not in the image"};
      }
      node = it->second.node.get();
    }
    if (!S_ISREG(node->mode) && !node->is_dir()) {
      return Error{EINVAL, "prefetch path '" + path + "' is not a regular file or directory"};
    }
    resolver.add_tree(*node);
  }
  return resolver.take();
}

Result<std::vector<std::string>> read_prefetch_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error{ENOENT, "cannot read the prefetch list '" + path + "'"};
  std::vector<std::string> paths;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (line.empty() || line.front() == '#') continue;
    paths.push_back(line);
  }
  return paths;
}

}  // namespace ferry::builder
