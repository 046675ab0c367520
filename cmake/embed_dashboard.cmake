# Writes OUT: a C++ source with every file of the built dashboard (web/dist)
# as bytes, for services/gateway/dashboard.cc. Run with
#   cmake -DSRC_DIR=<web/dist> -DOUT=<file.cc> -P embed_dashboard.cmake
file(GLOB files RELATIVE ${SRC_DIR} ${SRC_DIR}/*)
list(SORT files)
set(arrays "")
set(entries "")
set(i 0)
foreach(f IN LISTS files)
  file(READ ${SRC_DIR}/${f} hex HEX)
  string(LENGTH "${hex}" n)
  math(EXPR size "${n} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  # Lines of 32 bytes, so the file stays readable for tools.
  string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){32})" "\\1\n" bytes "${bytes}")
  string(APPEND arrays "const unsigned char k${i}[] = {\n${bytes}0};\n")
  string(APPEND entries "    {\"${f}\", {reinterpret_cast<const char*>(k${i}), ${size}}},\n")
  math(EXPR i "${i} + 1")
endforeach()
file(WRITE ${OUT}.tmp "// Generated from web/dist by cmake/embed_dashboard.cmake. Do not edit.
#include \"services/gateway/dashboard.h\"

namespace c2d::gateway {
namespace {
${arrays}}  // namespace

const std::vector<DashboardFile>& DashboardFiles() {
  static const auto* files = new std::vector<DashboardFile>{
${entries}  };
  return *files;
}

}  // namespace c2d::gateway
")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
