// REST bodies of each resource, as the gateway parses them: the body's
// shape, every field's type and range, and a service's whole body applied
// onto a service (create and patch). Never throws, never crashes; an
// accepted service body yields a spec the deployer accepts.

#include <cstddef>
#include <cstdint>
#include <string>

#include "libs/crypto/seal.h"
#include "libs/rpc/validate.h"
#include "services/gateway/api.h"
#include "services/gateway/service_body.h"

namespace {

using c2d::gateway::json;

const c2d::gateway::Config& FuzzConfig() {
  static const c2d::gateway::Config* config = [] {
    auto* c = new c2d::gateway::Config;
    c->local_repo_root = "/nonexistent-c2d-fuzz-root";
    c->master_keys = *c2d::crypto::MasterKeys::Parse(c2d::crypto::MasterKeys::Generate("fz"));
    return c;
  }();
  return *config;
}

c2d::gateway::Service NewService() {
  c2d::gateway::Service s = c2d::gateway::ServiceDefaults();
  s.id = "svc_01ARZ3NDEKTSV4RRFFQ69G5FAV";
  s.project_id = "prj_01ARZ3NDEKTSV4RRFFQ69G5FAV";
  s.project_name = "fuzz";
  return s;
}

// The smaller resources' bodies, field by field as their handlers read them.
void SmallBodies(const std::string& body) {
  using namespace c2d::gateway;
  if (auto j = ParseObject(body, {"name"}); j.ok()) {
    std::string name;
    if (GetString(*j, "name", "", &name, 64).ok()) (void)c2d::rpc::ValidName(name);
  }
  if (auto j = ParseObject(body, {"email", "role"}); j.ok()) {
    std::string email, role;
    (void)GetString(*j, "email", "", &email, 254);
    if (GetString(*j, "role", "", &role, 20).ok()) (void)ParseRole(role);
  }
  if (auto j = ParseObject(body, {"name", "mount_path", "size_gb"}); j.ok()) {
    std::string path;
    int size = 1;
    if (GetString(*j, "mount_path", "", &path, 1024).ok()) (void)c2d::rpc::ValidMountPath(path);
    (void)GetInt(*j, "size_gb", "", 1, 1000, &size);
  }
  if (auto j = ParseObject(body, {"commit", "to", "provider", "secret"}, true); j.ok()) {
    std::string commit;
    bool flag = false;
    if (GetString(*j, "commit", "", &commit, 64).ok()) (void)c2d::rpc::IsCommitSha(commit);
    (void)GetBool(*j, "provider", "", &flag);
    (void)SubObject(*j, "to", {"x"});
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  SmallBodies(body);
  auto j = c2d::gateway::ParseObject(
      body, {"name", "type", "source", "auto_deploy", "build", "run", "health_check", "env"});
  if (!j.ok()) return 0;
  for (bool create : {true, false}) {
    c2d::gateway::Service s = NewService();
    if (!create) s.name = "web";
    (void)c2d::gateway::ApplyServiceBody(*j, &s, create, FuzzConfig());
  }
  return 0;
}
