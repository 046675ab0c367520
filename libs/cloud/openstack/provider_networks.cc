// OpenStackProvider: each project's network, its router and security
// groups (provider.h lists what is made, by which name).

#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "libs/cloud/openstack/provider.h"
#include "libs/common/status.h"

namespace c2d::cloud::openstack {

absl::Status OpenStackProvider::EnsureNetwork(const std::string& network) {
  return Network(network).status();
}

absl::StatusOr<OpenStackProvider::NetworkIds> OpenStackProvider::Network(
    const std::string& network) {
  // One at a time, here and in every process sharing the ledger: two
  // deploys of one project must not both find no network and make one each.
  absl::MutexLock ensuring(&network_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (auto it = networks_.find(network); it != networks_.end()) return it->second;
  }
  NetworkIds ids;
  std::string external;
  C2D_RETURN_IF_ERROR(ledger_.Exclusive(NetworkOwner(network),
                                        [&] { return MakeNetwork(network, ids, external); }));
  absl::MutexLock lock(&mu_);
  external_id_ = external;
  networks_[network] = ids;
  return ids;
}

absl::Status OpenStackProvider::MakeNetwork(const std::string& network, NetworkIds& ids,
                                            std::string& external) {
  const std::string owner = NetworkOwner(network);
  C2D_ASSIGN_OR_RETURN(
      ids.network, Made(kNetwork, network, owner, [&] { return neutron_.EnsureNetwork(network); }));
  C2D_ASSIGN_OR_RETURN(ids.subnet, Made(kSubnet, network, owner, [&] {
                         return neutron_.EnsureSubnet(network, ids.network, options_.subnet_cidr,
                                                      options_.dns_nameservers);
                       }));
  if (!options_.external_network.empty()) {
    C2D_ASSIGN_OR_RETURN(auto found, neutron_.FindByName("networks", options_.external_network));
    external = found ? *found : options_.external_network;
  }
  C2D_ASSIGN_OR_RETURN(std::string router, Made(kRouter, network, owner, [&] {
                         return neutron_.EnsureRouter(network, external);
                       }));
  C2D_RETURN_IF_ERROR(Made(kRouterInterface, network, owner, [&]() -> absl::StatusOr<std::string> {
                        C2D_RETURN_IF_ERROR(neutron_.EnsureRouterInterface(router, ids.subnet));
                        return absl::StrCat(router, "/", ids.subnet);
                      }).status());
  return EnsureGroups(network, ids);
}

absl::Status OpenStackProvider::EnsureGroups(const std::string& network, NetworkIds& ids) {
  const std::string owner = NetworkOwner(network);
  C2D_ASSIGN_OR_RETURN(ids.app_group, Made(kSecurityGroup, network + "-app", owner, [&] {
                         return neutron_.EnsureSecurityGroup(network + "-app",
                                                             "c2d: the project's app instances");
                       }));
  C2D_ASSIGN_OR_RETURN(ids.db_group, Made(kSecurityGroup, network + "-db", owner, [&] {
                         return neutron_.EnsureSecurityGroup(network + "-db",
                                                             "c2d: the project's database servers");
                       }));
  // (group id, rule, the rule's name in the ledger)
  std::vector<std::tuple<std::string, SecurityGroupRule, std::string>> rules;
  // Apps: the web from anywhere.
  for (int port : {80, 443}) {
    rules.emplace_back(ids.app_group,
                       SecurityGroupRule{.port_min = port, .remote_ip_prefix = "0.0.0.0/0"},
                       absl::StrCat(network, "-app:", port));
  }
  // Databases: their own port from the project's apps, added with the
  // first server on it (DatabasePort).
  // Both: any port from c2d (health checks, readiness, Caddy's remote admin).
  for (const std::string& cidr : options_.control_cidrs) {
    for (const auto& [group, role] : {std::pair{ids.app_group, "-app:"}, {ids.db_group, "-db:"}}) {
      rules.emplace_back(
          group, SecurityGroupRule{.port_min = 1, .port_max = 65535, .remote_ip_prefix = cidr},
          absl::StrCat(network, role, cidr));
    }
  }
  for (const auto& [group, rule, name] : rules) {
    C2D_RETURN_IF_ERROR(
        Made(kRule, name, owner, [&] { return neutron_.EnsureRule(group, rule); }).status());
  }
  // Earlier releases opened every port of the databases to the apps, by
  // one rule of this name: it goes.
  C2D_ASSIGN_OR_RETURN(std::vector<Resource> owned, ledger_.Owned(owner));
  for (const Resource& r : owned) {
    if (r.kind != kRule || r.name != network + "-db:apps") continue;
    C2D_RETURN_IF_ERROR(Delete(r));
    C2D_RETURN_IF_ERROR(ledger_.Forget(r.kind, r.name));
  }
  return absl::OkStatus();
}

absl::Status OpenStackProvider::DatabasePort(const std::string& network, const NetworkIds& ids,
                                             int port) {
  if (port <= 0 || port > 65535) {
    return absl::InvalidArgumentError("a database server needs the port it serves");
  }
  {
    absl::MutexLock lock(&mu_);
    if (db_ports_[network].count(port)) return absl::OkStatus();
  }
  // Under the network's lock: RemoveNetwork must not delete the group while
  // its rule is being made (the rule would outlive the ledger's row).
  const std::string owner = NetworkOwner(network);
  C2D_RETURN_IF_ERROR(ledger_.Exclusive(owner, [&] {
    return Made(kRule, absl::StrCat(network, "-db:apps:", port), owner,
                [&] {
                  return neutron_.EnsureRule(
                      ids.db_group,
                      SecurityGroupRule{.port_min = port, .remote_group_id = ids.app_group});
                })
        .status();
  }));
  absl::MutexLock lock(&mu_);
  db_ports_[network].insert(port);
  return absl::OkStatus();
}

absl::Status OpenStackProvider::RemoveNetwork(const std::string& network) {
  absl::MutexLock ensuring(&network_mu_);
  {
    absl::MutexLock lock(&mu_);
    networks_.erase(network);
    db_ports_.erase(network);
  }
  const std::string owner = NetworkOwner(network);
  return ledger_.Exclusive(owner, [&] { return Undo(owner); });
}

}  // namespace c2d::cloud::openstack
