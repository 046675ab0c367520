#include "libs/engine/tar.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "libs/common/ids.h"

namespace c2d {
namespace {

namespace fs = std::filesystem;

// Lists an archive with the system's tar, the reference reader.
std::string TarList(const std::string& archive) {
  fs::path file = fs::temp_directory_path() / (ids::New("tar") + ".tar");
  std::ofstream(file, std::ios::binary) << archive;
  std::string out;
  std::unique_ptr<FILE, decltype(&pclose)> p(popen(("tar -tvf " + file.string()).c_str(), "r"),
                                             pclose);
  char buf[4096];
  while (fgets(buf, sizeof buf, p.get()) != nullptr) out += buf;
  fs::remove(file);
  return out;
}

TEST_CASE("tar archives list correctly, long names and links included", "[tar]") {
  engine::TarWriter w;
  w.AddDirectory("app");
  w.AddFile("app/main.py", "print('hi')\n", 0755);
  const std::string long_name = "app/" + std::string(150, 'x') + "/deep.txt";
  w.AddFile(long_name, "deep\n");
  w.AddSymlink("app/link", "main.py");
  std::string listing = TarList(w.Finish());
  CHECK(listing.find("app/main.py") != std::string::npos);
  CHECK(listing.find("-rwxr-xr-x") != std::string::npos);
  CHECK(listing.find(long_name) != std::string::npos);
  CHECK(listing.find("app/link -> main.py") != std::string::npos);
}

TEST_CASE("AddTree skips .git and enforces the size cap", "[tar]") {
  fs::path dir = fs::temp_directory_path() / ids::New("ctx");
  fs::create_directories(dir / ".git/objects");
  fs::create_directories(dir / "src");
  std::ofstream(dir / ".git/HEAD") << "ref: refs/heads/main\n";
  std::ofstream(dir / "src/index.html") << "<h1>v1</h1>\n";
  std::ofstream(dir / "big.bin") << std::string(4096, 'b');

  engine::TarWriter ok;
  REQUIRE(ok.AddTree(dir.string(), 1 << 20).ok());
  std::string listing = TarList(ok.Finish());
  CHECK(listing.find("src/index.html") != std::string::npos);
  CHECK(listing.find("big.bin") != std::string::npos);
  CHECK(listing.find(".git") == std::string::npos);

  engine::TarWriter capped;
  absl::Status s = capped.AddTree(dir.string(), 2048);
  CHECK(absl::IsResourceExhausted(s));
  CHECK(std::string(s.message()).find("build context is larger than") != std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace c2d
