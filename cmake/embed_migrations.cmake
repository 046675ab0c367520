# Writes OUT: a C++ source that returns every migrations/NNNN_*.sql file, in
# version order, as c2d::pg::Migration values. Run with
#   cmake -DSRC_DIR=<migrations dir> -DOUT=<file.cc> -P embed_migrations.cmake
file(GLOB files RELATIVE ${SRC_DIR} ${SRC_DIR}/*.sql)
list(SORT files)
set(body "")
foreach(f IN LISTS files)
  file(READ ${SRC_DIR}/${f} sql)
  string(FIND "${sql}" ")c2d_sql\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${f} contains the raw-string delimiter )c2d_sql\"")
  endif()
  string(APPEND body "    {\"${f}\", R\"c2d_sql(${sql})c2d_sql\"},\n")
endforeach()
file(WRITE ${OUT}.tmp "// Generated from migrations/*.sql by cmake/embed_migrations.cmake. Do not edit.
#include \"migrations/embedded.h\"

#include <stdexcept>
#include <utility>

namespace c2d::migrations {

const std::vector<pg::Migration>& All() {
  static const auto* all = [] {
    const std::pair<const char*, const char*> files[] = {
${body}    };
    auto* out = new std::vector<pg::Migration>;
    for (const auto& [name, sql] : files) {
      auto m = pg::MakeMigration(name, sql);
      if (!m.ok()) throw std::logic_error(std::string(m.status().message()));
      out->push_back(std::move(*m));
    }
    return out;
  }();
  return *all;
}

int Latest() { return All().empty() ? 0 : All().back().version; }

}  // namespace c2d::migrations
")
# Touch OUT only when it changed, so a reconfigure does not rebuild dependants.
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
