#include "libs/engine/tar.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
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

// The whole stream of a TreeTar, read in `chunk`-byte pieces.
std::string ReadAll(engine::TreeTar& t, size_t chunk) {
  std::string out, buf(chunk, '\0');
  while (true) {
    auto n = t.Read(buf.data(), buf.size());
    REQUIRE(n.ok());
    if (*n == 0) break;
    out.append(buf.data(), *n);
  }
  return out;
}

TEST_CASE("a streamed tree skips .git and enforces the size cap", "[tar]") {
  fs::path dir = fs::temp_directory_path() / ids::New("ctx");
  fs::create_directories(dir / ".git/objects");
  fs::create_directories(dir / "src");
  std::ofstream(dir / ".git/HEAD") << "ref: refs/heads/main\n";
  std::ofstream(dir / "src/index.html") << "<h1>v1</h1>\n";
  std::ofstream(dir / "big.bin") << std::string(4096, 'b');

  auto ok = engine::TreeTar::Open(dir.string(), 1 << 20);
  REQUIRE(ok.ok());
  const std::string archive = ReadAll(**ok, 1000);
  CHECK(static_cast<int64_t>(archive.size()) == (*ok)->size());
  std::string listing = TarList(archive);
  CHECK(listing.find("src/index.html") != std::string::npos);
  CHECK(listing.find("big.bin") != std::string::npos);
  CHECK(listing.find(".git") == std::string::npos);

  auto capped = engine::TreeTar::Open(dir.string(), 2048);
  CHECK(absl::IsResourceExhausted(capped.status()));
  CHECK(std::string(capped.status().message()).find("build context is larger than") !=
        std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("a streamed tree stores symlinks as links and never reads through them", "[tar]") {
  fs::path dir = fs::temp_directory_path() / ids::New("ctx");
  fs::path outside = fs::temp_directory_path() / ids::New("outside");
  fs::create_directories(dir);
  fs::create_directories(outside);
  std::ofstream(outside / "secret.txt") << "host secret\n";
  fs::create_directory_symlink(outside, dir / "hostdir");
  fs::create_symlink(outside / "secret.txt", dir / "secret");
  std::ofstream(dir / "Dockerfile.c2d") << "tenant's own file\n";

  auto t = engine::TreeTar::Open(dir.string(), 1 << 20, {{"Dockerfile.c2d", "FROM scratch\n"}});
  REQUIRE(t.ok());
  const std::string archive = ReadAll(**t, 7);  // odd-sized reads cross every boundary
  CHECK(static_cast<int64_t>(archive.size()) == (*t)->size());
  CHECK(archive.find("host secret") == std::string::npos);
  CHECK(archive.find("tenant's own file") == std::string::npos);
  CHECK(archive.find("FROM scratch") != std::string::npos);
  std::string listing = TarList(archive);
  CHECK(listing.find("hostdir -> " + outside.string()) != std::string::npos);
  CHECK(listing.find("secret -> " + (outside / "secret.txt").string()) != std::string::npos);
  CHECK(listing.find("hostdir/") == std::string::npos);

  // The root itself given as a symlink is refused, not followed.
  fs::create_directory_symlink(outside, dir.string() + "-link");
  CHECK_FALSE(engine::TreeTar::Open(dir.string() + "-link", 1 << 20).ok());
  fs::remove(dir.string() + "-link");
  fs::remove_all(dir);
  fs::remove_all(outside);
}

TEST_CASE("a streamed tree extracts to the same files as the tree", "[tar]") {
  fs::path dir = fs::temp_directory_path() / ids::New("ctx");
  fs::create_directories(dir / "a/b");
  std::string big(3 * 65536 + 17, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  std::ofstream(dir / "a/b/big.txt") << big;
  const std::string long_name = std::string(120, 'n') + ".txt";
  std::ofstream(dir / "a" / long_name) << "long\n";
  auto t = engine::TreeTar::Open(dir.string(), 1 << 30);
  REQUIRE(t.ok());
  const fs::path file = fs::temp_directory_path() / (ids::New("tar") + ".tar");
  std::ofstream(file, std::ios::binary) << ReadAll(**t, 65536);
  const fs::path out = fs::temp_directory_path() / ids::New("x");
  fs::create_directories(out);
  REQUIRE(std::system(("tar -xf " + file.string() + " -C " + out.string()).c_str()) == 0);
  std::ifstream in(out / "a/b/big.txt", std::ios::binary);
  CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == big);
  CHECK(fs::exists(out / "a" / long_name));
  fs::remove_all(dir);
  fs::remove_all(out);
  fs::remove(file);
}

}  // namespace
}  // namespace c2d
