// The local object store, the verification's comparison, and streaming a
// command's stdout: the pieces backups are made of.

#include "libs/objstore/objstore.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "libs/common/command.h"
#include "libs/common/ids.h"
#include "libs/crypto/hash.h"
#include "services/dbprov/backup_job.h"
#include "services/dbprov/engine_ops.h"

namespace c2d {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("c2d-objstore-" + ids::New("t"));
  ~TempDir() { fs::remove_all(path); }
};

std::string Read(objstore::ObjectStore& store, const std::string& key) {
  std::string out;
  absl::Status s = store.Get(key, [&](absl::string_view b) {
    out.append(b.data(), b.size());
    return absl::OkStatus();
  });
  REQUIRE(s.ok());
  return out;
}

TEST_CASE("an object is written as a stream, appears whole on commit, and is checked on fetch",
          "[objstore]") {
  TempDir dir;
  objstore::LocalObjectStore store(dir.path.string());
  const std::string big(3 << 20, 'x');
  auto w = store.Create("backups/db-1/bak-1.dump");
  REQUIRE(w.ok());
  REQUIRE((*w)->Write("head:").ok());
  REQUIRE((*w)->Write(big).ok());
  // Not there before the commit.
  CHECK(absl::IsNotFound(
      store.Get("backups/db-1/bak-1.dump", [](absl::string_view) { return absl::OkStatus(); })));
  auto info = (*w)->Commit();
  REQUIRE(info.ok());
  CHECK(info->size == static_cast<int64_t>(5 + big.size()));
  CHECK(info->sha256 == crypto::Sha256Hex("head:" + big));
  CHECK(Read(store, "backups/db-1/bak-1.dump") == "head:" + big);

  // Dropped without a commit: nothing stored, no partial file left.
  {
    auto dropped = store.Create("backups/db-1/bak-2.dump");
    REQUIRE(dropped.ok());
    REQUIRE((*dropped)->Write("half").ok());
  }
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir.path)) files += e.is_regular_file();
  CHECK(files == 1);

  const std::string copy = (dir.path / "copy").string();
  REQUIRE(objstore::FetchVerified(store, "backups/db-1/bak-1.dump", info->sha256, copy).ok());
  CHECK(fs::file_size(copy) == static_cast<uintmax_t>(info->size));
  // One byte changed: refused, and no file.
  {
    std::fstream f(*store.PathOf("backups/db-1/bak-1.dump"),
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.put('y');
  }
  absl::Status bad = objstore::FetchVerified(store, "backups/db-1/bak-1.dump", info->sha256, copy);
  CHECK(absl::IsDataLoss(bad));
  CHECK_THAT(std::string(bad.message()), Catch::Contains("is corrupted"));
  CHECK_FALSE(fs::exists(copy));
  CHECK(store.Delete("backups/db-1/bak-1.dump").ok());
  CHECK(store.Delete("backups/db-1/bak-1.dump").ok());  // gone already: fine
}

TEST_CASE("object keys cannot leave the store", "[objstore]") {
  TempDir dir;
  objstore::LocalObjectStore store(dir.path.string());
  for (const std::string key :
       {"../x", "a/../../x", "/etc/passwd", "a//b", "A/b", "a/./b", "", "a/b/", ".hidden"}) {
    INFO(key);
    CHECK(absl::IsInvalidArgument(store.Create(key).status()));
  }
}

TEST_CASE("a verification compares tables and row counts", "[objstore]") {
  using dbprov::DumpCounts;
  using dbprov::TableCounts;
  auto same = [](TableCounts t) { return DumpCounts{t, t}; };
  bool equal = false;
  CHECK(dbprov::CompareCounts(same({{"public.a", 3}, {"public.b", 0}}),
                              {{"public.a", 3}, {"public.b", 0}},
                              &equal) == "2 tables, 3 rows: as at dump time");
  CHECK(equal);
  CHECK(dbprov::CompareCounts(same({{"public.a", 1}}), {{"public.a", 1}}, &equal) ==
        "1 table, 1 row: as at dump time");
  const std::string differs = dbprov::CompareCounts(same({{"public.a", 3}, {"public.b", 1}}),
                                                    {{"public.a", 2}, {"public.c", 0}}, &equal);
  CHECK_FALSE(equal);
  CHECK_THAT(differs, Catch::Contains("public.a has 2 rows, not 3") &&
                          Catch::Contains("public.b is missing") &&
                          Catch::Contains("public.c is extra"));
  // Writes during the dump (engines whose counts are not from the dump's
  // own snapshot): a count between before and after passes, others do not.
  const DumpCounts moving{{{"keys", 10}, {"db.gone", 2}}, {{"keys", 14}, {"db.new", 1}}};
  CHECK(dbprov::CompareCounts(moving, {{"keys", 12}, {"db.new", 1}}, &equal) ==
        "2 tables, 15 rows: within what the source held while it was dumped");
  CHECK(equal);
  CHECK(dbprov::CompareCounts(moving, {{"keys", 12}}, &equal).find("within") != std::string::npos);
  CHECK(equal);
  CHECK_THAT(dbprov::CompareCounts(moving, {{"keys", 15}}, &equal),
             Catch::Contains("keys has 15 rows, not 10-14"));
  CHECK_FALSE(equal);
  CHECK_THAT(dbprov::CompareCounts(moving, {{"keys", 9}, {"db.gone", 3}}, &equal),
             Catch::Contains("keys has 9 rows, not 10-14") &&
                 Catch::Contains("db.gone has too many rows"));
}

TEST_CASE("a command's stdout streams as raw bytes, apart from its stderr", "[objstore]") {
  std::string out;
  auto r = RunCommand(
      {.argv = {"/bin/sh", "-c", "head -c 300000 /dev/zero; echo oops >&2; printf 'end\\n'"},
       .on_stdout = [&](absl::string_view b) {
         out.append(b.data(), b.size());
         return absl::OkStatus();
       }});
  REQUIRE(r.ok());
  CHECK(r->exit_code == 0);
  CHECK(out.size() == 300004);
  CHECK(out.substr(300000) == "end\n");
  CHECK(r->output == "oops\n");
  // The consumer's error stops the command.
  auto stopped = RunCommand({.argv = {"/bin/sh", "-c", "yes"}, .on_stdout = [](absl::string_view) {
                               return absl::ResourceExhaustedError("disk full");
                             }});
  CHECK(absl::IsResourceExhausted(stopped.status()));
}

}  // namespace
}  // namespace c2d
