#pragma once

// An instance's Caddy as cloud-init configures it, run for real on this
// machine: the configuration and admin CA files of its user data, with the
// listeners moved to an address and ports of the test's (the remote admin
// API keeps the port the configuration gives it when asked). What c2d sends
// it over remote admin is then served on its TLS port by SNI.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "libs/cloud/openstack/caddy_admin.h"
#include "libs/cloud/openstack/cloud_init.h"
#include "libs/crypto/x509.h"
#include "libs/http/client.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/subprocess.h"

namespace c2d::testing {

// A client identity: a self-signed certificate and its key.
inline cloud::openstack::AdminClient NewClient(const std::string& name) {
  auto ca = crypto::CreateCa(name, absl::Hours(24));
  REQUIRE(ca.ok());
  return {ca->cert_pem, *ca->key.ToPem()};
}

// A certificate for `name` from a throwaway CA: the chain, the key, and the
// CA that verifies it.
struct Site {
  cloud::ServedCertificate served;
  std::string ca_pem;
};
inline Site NewSite(const std::string& name) {
  auto ca = crypto::CreateCa("test sites", absl::Hours(24));
  REQUIRE(ca.ok());
  auto key = crypto::EcKey::Generate();
  REQUIRE(key.ok());
  const absl::Time now = absl::Now();
  auto leaf = crypto::IssueLeaf(ca->key, ca->cert_pem, *key, {name}, now - absl::Minutes(1),
                                now + absl::Hours(1));
  REQUIRE(leaf.ok());
  return {{*leaf, *key->ToPem()}, ca->cert_pem};
}

// What cloud-init writes for the instance's Caddy (path -> content).
using CaddyFiles = std::map<std::string, std::string>;

class InstanceCaddy {
 public:
  // Listens on `host`: TLS on `tls_port`, remote admin on `admin_port` (0:
  // the configuration's own); plain HTTP and the local admin API on
  // loopback.
  InstanceCaddy(const CaddyFiles& files, std::string host, int tls_port, int admin_port = 0)
      : host_(std::move(host)), tls_port_(tls_port) {
    namespace fs = std::filesystem;
    using json = nlohmann::json;
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
    json config = json::parse(files.at(cloud::openstack::kCaddyConfigPath));
    // The admin CA's files, here.
    Write(dir_ / "admin-ca.crt", files.at(cloud::openstack::kAdminCaCertPath));
    Write(dir_ / "admin-ca.key", files.at(cloud::openstack::kAdminCaKeyPath));
    json& root = config["/apps/pki/certificate_authorities/c2d-admin/root"_json_pointer];
    REQUIRE(root["certificate"] == cloud::openstack::kAdminCaCertPath);
    REQUIRE(root["private_key"] == cloud::openstack::kAdminCaKeyPath);
    root = {{"certificate", (dir_ / "admin-ca.crt").string()},
            {"private_key", (dir_ / "admin-ca.key").string()}};
    local_admin_ = absl::StrCat("127.0.0.1:", FreePort());
    config["admin"]["listen"] = local_admin_;
    std::string remote = config["admin"]["remote"]["listen"];
    REQUIRE(remote.starts_with(":"));
    admin_port_ = admin_port > 0 ? admin_port : std::stoi(remote.substr(1));
    config["admin"]["remote"]["listen"] = absl::StrCat(host_, ":", admin_port_);
    config["apps"]["http"]["servers"]["c2d-http"]["listen"] = {
        absl::StrCat("127.0.0.1:", FreePort())};
    config["apps"]["http"]["servers"]["c2d-https"]["listen"] = {
        absl::StrCat(host_, ":", tls_port_)};
    Write(dir_ / "caddy.json", config.dump());
    caddy_ = std::make_unique<Subprocess>(
        std::vector<std::string>{"/usr/bin/caddy", "run", "--config",
                                 (dir_ / "caddy.json").string()},
        std::map<std::string, std::string>{{"XDG_DATA_HOME", (dir_ / "data").string()},
                                           {"XDG_CONFIG_HOME", (dir_ / "data").string()}},
        (dir_ / "caddy.log").string());
    // Up once its local admin API answers (the remote one is all TLS).
    REQUIRE(WaitFor(std::chrono::seconds(20), [&] {
      auto r = http::Send({.url = absl::StrCat("http://", local_admin_, "/config/"),
                           .timeout = std::chrono::seconds(1)});
      return (r.ok() && r->status == 200) || caddy_->Wait(std::chrono::milliseconds(0)).has_value();
    }));
    INFO(caddy_->Output());
    REQUIRE_FALSE(caddy_->Wait(std::chrono::milliseconds(0)).has_value());
  }
  ~InstanceCaddy() {
    caddy_.reset();
    std::filesystem::remove_all(dir_);
  }

  const std::string& host() const { return host_; }
  int admin_port() const { return admin_port_; }
  // Caddy's output so far.
  std::string Output() const { return caddy_->Output(); }

  // What a client sent to `name` by DNS gets from the TLS port: the HTTP
  // status, or the error (the certificate verified against `ca_pem`).
  absl::StatusOr<long> Visit(const std::string& name, const std::string& ca_pem) const {
    auto r = http::Send({.url = absl::StrCat("https://", name, ":", tls_port_, "/"),
                         .timeout = std::chrono::seconds(5),
                         .ca_pem = ca_pem,
                         .resolve = {absl::StrCat(name, ":", tls_port_, ":", host_)}});
    if (!r.ok()) return r.status();
    return r->status;
  }

 private:
  static void Write(const std::filesystem::path& path, const std::string& content) {
    std::ofstream(path) << content;
  }

  std::filesystem::path dir_ =
      std::filesystem::temp_directory_path() /
      absl::StrCat("c2d-instance-caddy-", getpid(), "-", reinterpret_cast<uintptr_t>(this));
  std::string host_, local_admin_;
  int tls_port_ = 0, admin_port_ = 0;
  std::unique_ptr<Subprocess> caddy_;
};

}  // namespace c2d::testing
