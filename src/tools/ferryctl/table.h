// Table: the aligned text tables every ferryctl listing prints (daemons, records, list).
//
// Columns are separated by two spaces and padded to their widest cell; right-aligned columns
// suit numbers. The last column is never padded, so lines carry no trailing blanks. Widths are
// counted in bytes: paths and ids are ASCII in practice, and a wider UTF-8 cell only shifts its
// own line.
//
// Thread-safety: none needed (one table per command run). Never fails.
#pragma once

#include <string>
#include <vector>

namespace ferry::ctl {

class Table {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string header;
    Align align = Align::kLeft;
  };

  explicit Table(std::vector<Column> columns);
  // Missing trailing cells print empty; extra cells are dropped.
  void add_row(std::vector<std::string> cells);
  // Header line, then one line per row, each ending in '\n'.
  [[nodiscard]] std::string render() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace ferry::ctl
