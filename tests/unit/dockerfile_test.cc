#include "services/builder/dockerfile.h"

#include <catch2/catch.hpp>
#include <string>

namespace c2d {
namespace {

std::string Why(const std::string& dockerfile) {
  absl::Status s = builder::CheckDockerfile(dockerfile);
  return s.ok() ? "" : std::string(s.message());
}

TEST_CASE("Dockerfiles that reach past the build sandbox are refused, naming the line",
          "[dockerfile]") {
  // CVE-2024-1753: a bind mount from a stage holding a symlink to /.
  CHECK(Why("FROM b AS base\nRUN ln -s / /rootdir\nFROM b\n"
            "RUN --mount=type=bind,from=base,source=/rootdir,target=/host,rw cat /host/etc/x\n") ==
        "Dockerfile line 4: RUN --mount=type=bind is not allowed on c2d (only tmpfs and secret "
        "mounts); use COPY or COPY --from to bring files into a step");
  CHECK(Why("FROM b\nRUN --mount=from=base,source=/r,target=/h cat /h/x\n")
            .find("Dockerfile line 2: RUN --mount=type=bind") == 0);  // bind is the default type
  CHECK(Why("FROM b\nRUN --mount=type=cache,target=/root/.cache pip install x\n")
            .find("type=cache is not allowed") != std::string::npos);
  CHECK(Why("FROM b\nRUN --network=none \\\n    --MOUNT=Type=Bind,target=/h true\n")
            .find("Dockerfile line 2:") == 0);
  CHECK(Why("FROM b\nARG T=bind\nRUN --mount=type=$T,target=/h true\n")
            .find("may not use variables") != std::string::npos);
  // The engine fetches ADD URLs from the host's network.
  CHECK(Why("FROM b\nADD http://127.0.0.1:2019/config/ /c\n")
            .find("Dockerfile line 2: ADD http://127.0.0.1:2019/config/: ADD from a URL is not "
                  "allowed") == 0);
  CHECK(Why("FROM b\nADD --chown=1:1 [\"HTTPS://example.com/x\", \"/x\"]\n") != "");
  CHECK(Why("FROM b\nadd git@github.com:o/r.git /src\n") != "");
  CHECK(Why("FROM b\nARG U=http://127.0.0.1/\nADD $U /x\n").find("variables") != std::string::npos);
  CHECK(Why("FROM b\nONBUILD ADD http://10.0.2.2/x /x\n").find("Dockerfile line 2") == 0);
  // A continuation line hides nothing, with either escape character.
  CHECK(Why("FROM b\nADD \\\n  http://x/y \\\n  /y\n").find("Dockerfile line 2") == 0);
  CHECK(Why("# escape=`\nFROM b\nADD `\n  http://x/y /y\n").find("Dockerfile line 3") == 0);
}

TEST_CASE("ordinary Dockerfiles pass the check", "[dockerfile]") {
  CHECK(Why("# syntax=docker/dockerfile:1\nFROM b AS build\nWORKDIR /src\nCOPY . .\n"
            "RUN --mount=type=tmpfs,target=/tmp make\n"
            "RUN --mount=type=secret,id=npm cat /run/secrets/npm >/dev/null || true\n"
            "FROM b\nCOPY --from=build /src/out /app\nADD app.tar.gz /srv/\n"
            "# ADD http://example.com/in-a-comment /x\n"
            "RUN echo 'ADD http://not-an-instruction/' && curl -fsS https://example.com/\n"
            "CMD [\"/app/server\"]\n") == "");
}

}  // namespace
}  // namespace c2d
