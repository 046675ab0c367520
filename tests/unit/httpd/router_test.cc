// The router: literal segments, captures, 404 and 405.

#include "libs/httpd/router.h"

#include "tests/unit/httpd/support.h"

namespace c2d {
namespace {

using namespace httpd_test;

TEST_CASE("router matches literal segments and captures and answers 404 and 405") {
  httpd::Router router;
  router.Add("GET", "/v1/projects/{id}/services",
             [](Request& req) { return Text("list " + req.params.at("id")); });
  router.Add("POST", "/v1/projects/{id}/services", [](Request&) { return Text("create", 201); });
  router.Add("GET", "/v1/projects/{id}",
             [](Request& req) { return Text("get " + req.params["id"]); });
  router.Add("GET", "/v1/projects/search", [](Request&) { return Text("search"); });

  auto dispatch = [&](std::string method, std::string path, Request* out = nullptr) {
    Request req;
    req.method = std::move(method);
    req.path = std::move(path);
    Response r = router.Dispatch(req);
    if (out != nullptr) *out = req;
    return r;
  };

  Request req;
  Response r = dispatch("GET", "/v1/projects/prj_1/services", &req);
  CHECK(r.status == 200);
  CHECK(r.body == "list prj_1");
  CHECK(req.route == "/v1/projects/{id}/services");
  CHECK(req.params == std::map<std::string, std::string>{{"id", "prj_1"}});

  CHECK(dispatch("POST", "/v1/projects/prj_1/services").status == 201);
  CHECK(dispatch("GET", "/v1/projects/prj_2").body == "get prj_2");
  // A literal segment wins over a capture, whatever the order of Add.
  CHECK(dispatch("GET", "/v1/projects/search").body == "search");
  // HEAD runs the GET route.
  CHECK(dispatch("HEAD", "/v1/projects/prj_2").body == "get prj_2");

  r = dispatch("GET", "/v1/nothing/here", &req);
  CHECK(r.status == 404);
  CHECK(ErrorBody(r.body)["error"]["code"] == "not_found");
  CHECK(req.route.empty());
  // Captures take exactly one non-empty segment.
  CHECK(dispatch("GET", "/v1/projects//services").status == 404);
  CHECK(dispatch("GET", "/v1/projects/a/b/services").status == 404);
  CHECK(dispatch("GET", "/v1/projects/prj_1/").status == 404);

  r = dispatch("DELETE", "/v1/projects/prj_1/services");
  CHECK(r.status == 405);
  CHECK(ErrorBody(r.body)["error"]["code"] == "method_not_allowed");
  bool allow_found = false;
  for (const auto& [name, value] : r.headers) {
    if (name == "Allow") {
      allow_found = true;
      CHECK(value == "GET, POST");
    }
  }
  CHECK(allow_found);

  CHECK(router.Routes() ==
        std::vector<std::pair<std::string, std::string>>{{"GET", "/v1/projects/{id}/services"},
                                                         {"POST", "/v1/projects/{id}/services"},
                                                         {"GET", "/v1/projects/{id}"},
                                                         {"GET", "/v1/projects/search"}});
}

}  // namespace
}  // namespace c2d
