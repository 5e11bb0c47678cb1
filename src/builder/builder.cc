#include "builder/builder.h"

#include <sys/stat.h>

#include "builder/erofs_writer.h"
#include "builder/output_file.h"
#include "builder/prefetch_list.h"
#include "builder/tree.h"
#include "storage/chunk_codec.h"

namespace ferry::builder {
namespace {

std::string dir_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

Result<BuildSummary> build_image(const BuildOptions& options) {
  const uint32_t cs = options.chunk_size;
  if (cs < erofs::kMinChunkSize || cs > erofs::kMaxChunkSize || (cs & (cs - 1)) != 0) {
    return Error{EINVAL, "chunk size " + std::to_string(cs) + " is not a power of two from 4096 to 67108864"};
  }
  struct stat st {};
  if (::stat(options.blob_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Error{ENOENT, "blob directory '" + options.blob_dir + "' does not exist or is not a directory"};
  }
  if (options.bootstrap.empty()) return Error{EINVAL, "no bootstrap path given"};
  if (options.layers.empty()) return Error{EINVAL, "no layers given"};

  BuildSummary summary;
  summary.bootstrap = options.bootstrap;
  summary.compressor = options.compressor;
  summary.chunk_size = cs;
  Tree tree;
  BlobStore blobs(options.blob_dir, options.compressor, cs);
  for (size_t i = 0; i < options.layers.size(); ++i) {
    FERRY_ASSIGN(LayerStats ls, apply_layer(options.layers[i], static_cast<uint32_t>(i), tree, blobs));
    summary.entries += ls.entries;
    summary.file_bytes += ls.file_bytes;
  }

  erofs::ChunkTable table = blobs.table();
  FERRY_ASSIGN(table.prefetch, resolve_prefetch(tree, table, options.prefetch_paths));
  for (const auto& r : table.prefetch) summary.prefetch_chunks += r.chunk_count;
  const std::vector<std::byte> table_bytes = erofs::encode_chunk_table(table);
  BootstrapSpec spec;
  spec.root = &tree.root();
  spec.chunk_size = cs;
  spec.chunk_table = table_bytes;
  for (const auto& b : blobs.blobs()) {
    spec.devices.push_back({erofs::digest_hex(b.info.digest),
                            static_cast<uint32_t>(b.info.device_size / erofs::kFerryBlockSize)});
  }
  const erofs::Digest table_digest = storage::sha256(table_bytes);
  std::copy_n(table_digest.begin(), spec.uuid.size(), spec.uuid.begin());
  FERRY_ASSIGN(Bootstrap boot, write_bootstrap(spec));

  FERRY_ASSIGN(OutputFile out, OutputFile::create(dir_of(options.bootstrap), "the bootstrap"));
  FERRY_TRY(out.write(boot.bytes));
  FERRY_TRY(blobs.commit());
  FERRY_TRY(out.commit(options.bootstrap));
  summary.bootstrap_size = boot.bytes.size();
  summary.inodes = boot.inodes;
  summary.blobs = blobs.blobs();
  summary.stats = blobs.stats();
  return summary;
}

}  // namespace ferry::builder
