#include "builder/tree.h"

#include <sys/stat.h>

#include <deque>

namespace ferry::builder {
namespace {

constexpr size_t kMaxName = 255;

Error escapes(std::string_view name, const std::string& why) {
  return Error{EINVAL, "path '" + std::string(name) + "' " + why};
}

void prune_lower(Node& dir, uint32_t layer) {
  for (auto it = dir.children.begin(); it != dir.children.end();) {
    if (it->second.layer != layer) {
      it = dir.children.erase(it);
      continue;
    }
    if (it->second.node->is_dir()) prune_lower(*it->second.node, layer);
    ++it;
  }
}

}  // namespace

bool Node::is_dir() const {
  return S_ISDIR(mode);
}

Result<PathParts> split_entry_path(std::string_view name) {
  if (!name.empty() && name.front() == '/') return escapes(name, "is absolute and escapes the image root");
  PathParts parts;
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t end = name.find('/', pos);
    if (end == std::string_view::npos) end = name.size();
    std::string_view part = name.substr(pos, end - pos);
    pos = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return escapes(name, "has a '..' component and may escape the image root");
    if (part.size() > kMaxName) return escapes(name, "has a component longer than 255 bytes");
    parts.emplace_back(part);
  }
  return parts;
}

std::string join_path(const PathParts& parts) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += '/';
    out += p;
  }
  return out;
}

Tree::Tree() : root_(std::make_shared<Node>()) {
  root_->mode = S_IFDIR | 0755;
}

Result<Node*> Tree::parent_of(const PathParts& path, bool create, const Node* attrs_for_created,
                              uint32_t layer) {
  // Symlinks among the parents are followed inside the image (an absolute target starts at its
  // root, ".." stops there), as containerd's and umoci's unpack resolve them; the last component
  // is never followed.
  constexpr int kMaxSymlinks = 40;  // Linux's MAXSYMLINKS
  std::vector<Node*> stack{root_.get()};
  std::deque<std::string> todo(path.begin(), path.end() - (path.empty() ? 0 : 1));
  int symlinks = 0;
  const auto not_dir = [&](const std::string& what) {
    return Error{EINVAL, "'" + what + "' is not a directory in the layers below, so '" + join_path(path) +
                             "' cannot be created in it"};
  };
  while (!todo.empty()) {
    const std::string part = std::move(todo.front());
    todo.pop_front();
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (stack.size() > 1) stack.pop_back();
      continue;
    }
    Node* dir = stack.back();
    auto it = dir->children.find(part);
    if (it == dir->children.end()) {
      if (!create) return static_cast<Node*>(nullptr);
      auto made = std::make_shared<Node>();
      made->mode = S_IFDIR | 0755;
      if (attrs_for_created != nullptr) {
        made->mtime = attrs_for_created->mtime;
        made->mtime_nsec = attrs_for_created->mtime_nsec;
      }
      it = dir->children.emplace(part, Dirent{std::move(made), layer}).first;
    }
    const Node& found = *it->second.node;
    if (S_ISLNK(found.mode)) {
      if (++symlinks > kMaxSymlinks) {
        if (!create) return static_cast<Node*>(nullptr);
        return Error{ELOOP, "too many symlinks in the parents of '" + join_path(path) + "'"};
      }
      const std::string& target = found.link_target;
      if (!target.empty() && target.front() == '/') stack.resize(1);
      std::vector<std::string> parts;
      for (size_t pos = 0; pos <= target.size();) {
        size_t end = target.find('/', pos);
        if (end == std::string::npos) end = target.size();
        parts.push_back(target.substr(pos, end - pos));
        pos = end + 1;
      }
      todo.insert(todo.begin(), parts.begin(), parts.end());
      continue;
    }
    if (!found.is_dir()) {
      if (!create) return static_cast<Node*>(nullptr);
      return not_dir(part);
    }
    stack.push_back(it->second.node.get());
  }
  return stack.back();
}

Status Tree::add(const PathParts& path, std::shared_ptr<Node> node, uint32_t layer) {
  if (path.empty()) {
    if (!node->is_dir()) return Error{EINVAL, "the image root must be a directory"};
    node->children = std::move(root_->children);
    root_ = std::move(node);
    return {};
  }
  FERRY_ASSIGN(Node * parent, parent_of(path, true, node.get(), layer));
  auto it = parent->children.find(path.back());
  if (it != parent->children.end() && it->second.node->is_dir() && node->is_dir()) {
    node->children = std::move(it->second.node->children);
    it->second = Dirent{std::move(node), layer};
    return {};
  }
  parent->children.insert_or_assign(path.back(), Dirent{std::move(node), layer});
  return {};
}

Status Tree::link(const PathParts& path, const PathParts& target, uint32_t layer) {
  const auto missing = [&] {
    return Error{EINVAL, "hard link target '" + join_path(target) + "' does not exist"};
  };
  if (target.empty()) return Error{EINVAL, "a hard link to the image root"};
  FERRY_ASSIGN(Node * target_parent, parent_of(target, false, nullptr, layer));
  if (target_parent == nullptr) return missing();
  auto it = target_parent->children.find(target.back());
  if (it == target_parent->children.end()) return missing();
  if (it->second.node->is_dir())
    return Error{EINVAL, "hard link target '" + join_path(target) + "' is a directory"};
  std::shared_ptr<Node> target_node = it->second.node;
  if (path == target) return {};
  if (path.empty()) return Error{EINVAL, "the image root cannot be a hard link"};
  FERRY_ASSIGN(Node * parent, parent_of(path, true, target_node.get(), layer));
  parent->children.insert_or_assign(path.back(), Dirent{std::move(target_node), layer});
  return {};
}

Status Tree::whiteout(const PathParts& path) {
  if (path.empty()) return Error{EINVAL, "the image root cannot be whited out"};
  FERRY_ASSIGN(Node * parent, parent_of(path, false, nullptr, 0));
  if (parent != nullptr) parent->children.erase(path.back());
  return {};
}

Status Tree::opaque(const PathParts& dir, uint32_t layer) {
  Node* node = root_.get();
  if (!dir.empty()) {
    FERRY_ASSIGN(Node * parent, parent_of(dir, false, nullptr, layer));
    if (parent == nullptr) return {};
    auto it = parent->children.find(dir.back());
    if (it == parent->children.end() || !it->second.node->is_dir()) return {};
    node = it->second.node.get();
  }
  prune_lower(*node, layer);
  return {};
}

}  // namespace ferry::builder
