#pragma once

// Neutron (Networking v2.0) as c2d uses it: per project one network, subnet
// and router (DESIGN §1 point 23), security groups and their rules, ports
// and floating IPs.
//
// Every Ensure* finds the resource by its name first and makes it only when
// missing, so a step that ran before a crash runs again without making a
// second one (names are c2d's, unique per installation). Deleting what is
// gone already is OK. Thread-safe.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/cloud/openstack/session.h"

namespace c2d::cloud::openstack {

struct SecurityGroupRule {
  std::string direction = "ingress";  // ingress or egress
  std::string protocol = "tcp";       // tcp, udp, icmp; "" = any
  int port_min = 0;                   // 0 with port_max 0 = every port
  int port_max = 0;
  std::string remote_ip_prefix;  // e.g. 0.0.0.0/0; empty: see remote_group_id
  std::string remote_group_id;   // members of this group only
};

struct Port {
  std::string id;
  std::string network_id;
  std::string device_id;  // the server it is attached to, if any
  std::vector<std::string> ips;
  std::string status;
};

class Neutron {
 public:
  explicit Neutron(Session& session) : session_(session) {}

  // The id of the `resource` ("networks", "subnets", "routers",
  // "security-groups", "ports", "floatingips") named `name`, if any.
  absl::StatusOr<std::optional<std::string>> FindByName(const std::string& resource,
                                                        const std::string& name);

  absl::StatusOr<std::string> EnsureNetwork(const std::string& name);
  // A subnet of `cidr` (IPv4, DHCP on) on the network.
  absl::StatusOr<std::string> EnsureSubnet(const std::string& name, const std::string& network_id,
                                           const std::string& cidr,
                                           const std::vector<std::string>& dns_servers = {});
  // A router; with a gateway on `external_network_id` when it is not empty.
  absl::StatusOr<std::string> EnsureRouter(const std::string& name,
                                           const std::string& external_network_id);
  // The router's interface on the subnet; OK when it has one already.
  absl::Status EnsureRouterInterface(const std::string& router_id, const std::string& subnet_id);
  absl::Status RemoveRouterInterface(const std::string& router_id, const std::string& subnet_id);

  absl::StatusOr<std::string> EnsureSecurityGroup(const std::string& name,
                                                  const std::string& description);
  // The rule's id: the group's own when it has the same rule, else a new one.
  absl::StatusOr<std::string> EnsureRule(const std::string& group_id,
                                         const SecurityGroupRule& rule);
  // The id of the group's rule equal to `rule` (Neutron stores ports 1-65535
  // as "any"), if any.
  absl::StatusOr<std::optional<std::string>> FindRule(const std::string& group_id,
                                                      const SecurityGroupRule& rule);

  absl::StatusOr<Port> EnsurePort(const std::string& name, const std::string& network_id,
                                  const std::vector<std::string>& security_group_ids);
  // The ports of a server (device_id).
  absl::StatusOr<std::vector<Port>> PortsOf(const std::string& device_id);

  // A floating IP on `external_network_id` bound to `port_id`; its address.
  absl::StatusOr<std::pair<std::string, std::string>> CreateFloatingIp(
      const std::string& external_network_id, const std::string& port_id,
      const std::string& description);

  // The id of the floating IP made with `description`, if any.
  absl::StatusOr<std::optional<std::string>> FindFloatingIp(const std::string& description);

  // DELETE /v2.0/<resource>/<id>; OK when it is gone already.
  absl::Status Delete(const std::string& resource, const std::string& id);

 private:
  absl::StatusOr<std::string> Create(const std::string& resource, const std::string& singular,
                                     nlohmann::json body);
  absl::StatusOr<std::string> Ensure(const std::string& resource, const std::string& singular,
                                     const std::string& name, nlohmann::json body);

  Session& session_;
};

Port ParsePort(const nlohmann::json& port);

}  // namespace c2d::cloud::openstack
