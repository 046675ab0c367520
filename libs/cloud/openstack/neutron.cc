#include "libs/cloud/openstack/neutron.h"

#include "absl/strings/str_cat.h"
#include "libs/cloud/openstack/errors.h"
#include "libs/common/status.h"
#include "libs/http/client.h"

namespace c2d::cloud::openstack {
namespace {

using json = nlohmann::json;

std::string Path(const std::string& resource, const std::string& id = "") {
  return absl::StrCat("/v2.0/", resource, id.empty() ? "" : "/", http::UrlEncode(id));
}

}  // namespace

Port ParsePort(const json& p) {
  Port port{.id = p.value("id", ""),
            .network_id = p.value("network_id", ""),
            .device_id = p.value("device_id", ""),
            .status = p.value("status", "")};
  for (const json& ip : p.value("fixed_ips", json::array())) {
    port.ips.push_back(ip.value("ip_address", ""));
  }
  return port;
}

absl::StatusOr<std::optional<std::string>> Neutron::FindByName(const std::string& resource,
                                                               const std::string& name) {
  C2D_ASSIGN_OR_RETURN(
      Reply r, session_.Call("network",
                             {.path = absl::StrCat(Path(resource), "?name=", http::UrlEncode(name),
                                                   "&fields=id")}));
  // The list's key: "security-groups" lists "security_groups".
  std::string key = resource;
  for (char& c : key) c = c == '-' ? '_' : c;
  const json items = r.body.value(key, json::array());
  if (items.empty()) return std::optional<std::string>();
  return std::optional<std::string>(items[0].value("id", ""));
}

absl::StatusOr<std::string> Neutron::Create(const std::string& resource,
                                            const std::string& singular, json body) {
  C2D_ASSIGN_OR_RETURN(Reply r, session_.Call("network", {.method = "POST",
                                                          .path = Path(resource),
                                                          .body = json{{singular, body}}}));
  const std::string id = r.body.value(json::json_pointer("/" + singular + "/id"), "");
  if (id.empty()) {
    return absl::UnknownError(absl::StrCat("network: POST ", Path(resource), " answered no id"));
  }
  return id;
}

absl::StatusOr<std::string> Neutron::Ensure(const std::string& resource,
                                            const std::string& singular, const std::string& name,
                                            json body) {
  C2D_ASSIGN_OR_RETURN(std::optional<std::string> found, FindByName(resource, name));
  if (found) return *found;
  body["name"] = name;
  return Create(resource, singular, std::move(body));
}

absl::StatusOr<std::string> Neutron::EnsureNetwork(const std::string& name) {
  return Ensure("networks", "network", name, {{"admin_state_up", true}});
}

absl::StatusOr<std::string> Neutron::EnsureSubnet(const std::string& name,
                                                  const std::string& network_id,
                                                  const std::string& cidr,
                                                  const std::vector<std::string>& dns_servers) {
  json body = {
      {"network_id", network_id}, {"ip_version", 4}, {"cidr", cidr}, {"enable_dhcp", true}};
  if (!dns_servers.empty()) body["dns_nameservers"] = dns_servers;
  return Ensure("subnets", "subnet", name, std::move(body));
}

absl::StatusOr<std::string> Neutron::EnsureRouter(const std::string& name,
                                                  const std::string& external_network_id) {
  json body = {{"admin_state_up", true}};
  if (!external_network_id.empty()) {
    body["external_gateway_info"] = {{"network_id", external_network_id}};
  }
  return Ensure("routers", "router", name, std::move(body));
}

absl::Status Neutron::EnsureRouterInterface(const std::string& router_id,
                                            const std::string& subnet_id) {
  C2D_ASSIGN_OR_RETURN(
      Reply ports, session_.Call("network", {.path = absl::StrCat(Path("ports"), "?device_id=",
                                                                  http::UrlEncode(router_id))}));
  for (const json& p : ports.body.value("ports", json::array())) {
    for (const json& ip : p.value("fixed_ips", json::array())) {
      if (ip.value("subnet_id", "") == subnet_id) return absl::OkStatus();
    }
  }
  return session_
      .Call("network", {.method = "PUT",
                        .path = Path("routers", router_id) + "/add_router_interface",
                        .body = json{{"subnet_id", subnet_id}}})
      .status();
}

absl::Status Neutron::RemoveRouterInterface(const std::string& router_id,
                                            const std::string& subnet_id) {
  auto r =
      session_.Call("network", {.method = "PUT",
                                .path = Path("routers", router_id) + "/remove_router_interface",
                                .body = json{{"subnet_id", subnet_id}}});
  return r.ok() || absl::IsNotFound(r.status()) ? absl::OkStatus() : r.status();
}

absl::StatusOr<std::string> Neutron::EnsureSecurityGroup(const std::string& name,
                                                         const std::string& description) {
  return Ensure("security-groups", "security_group", name, {{"description", description}});
}

namespace {

// A rule as Neutron keeps it: a port range of 1-65535 is no range at all.
json RuleBody(const std::string& group_id, const SecurityGroupRule& rule) {
  json body = {
      {"security_group_id", group_id}, {"direction", rule.direction}, {"ethertype", "IPv4"}};
  body["protocol"] = rule.protocol.empty() ? json() : json(rule.protocol);
  const int max = rule.port_max > 0 ? rule.port_max : rule.port_min;
  const bool any = rule.port_min <= 1 && max == 65535;
  body["port_range_min"] = rule.port_min > 0 && !any ? json(rule.port_min) : json();
  body["port_range_max"] = rule.port_min > 0 && !any ? json(max) : json();
  body["remote_ip_prefix"] = rule.remote_ip_prefix.empty() ? json() : json(rule.remote_ip_prefix);
  body["remote_group_id"] = rule.remote_group_id.empty() ? json() : json(rule.remote_group_id);
  return body;
}

}  // namespace

absl::StatusOr<std::optional<std::string>> Neutron::FindRule(const std::string& group_id,
                                                             const SecurityGroupRule& rule) {
  C2D_ASSIGN_OR_RETURN(
      Reply r, session_.Call("network", {.path = absl::StrCat(
                                             Path("security-group-rules"),
                                             "?security_group_id=", http::UrlEncode(group_id))}));
  const json want = RuleBody(group_id, rule);
  for (const json& have : r.body.value("security_group_rules", json::array())) {
    bool same = true;
    for (const auto& [key, value] : want.items()) same = same && have.value(key, json()) == value;
    if (same) return std::optional<std::string>(have.value("id", ""));
  }
  return std::optional<std::string>();
}

absl::StatusOr<std::string> Neutron::EnsureRule(const std::string& group_id,
                                                const SecurityGroupRule& rule) {
  C2D_ASSIGN_OR_RETURN(std::optional<std::string> found, FindRule(group_id, rule));
  if (found) return *found;
  json body = RuleBody(group_id, rule);
  for (auto it = body.begin(); it != body.end();) it = it->is_null() ? body.erase(it) : ++it;
  auto made = Create("security-group-rules", "security_group_rule", std::move(body));
  // Made meanwhile by someone else: Neutron refuses the duplicate.
  if (Fault(made.status()) == "SecurityGroupRuleExists") {
    C2D_ASSIGN_OR_RETURN(found, FindRule(group_id, rule));
    return found.value_or("");
  }
  return made;
}

absl::StatusOr<Port> Neutron::EnsurePort(const std::string& name, const std::string& network_id,
                                         const std::vector<std::string>& security_group_ids) {
  C2D_ASSIGN_OR_RETURN(std::optional<std::string> found, FindByName("ports", name));
  std::string id;
  if (found) {
    id = *found;
  } else {
    json body = {{"name", name}, {"network_id", network_id}, {"admin_state_up", true}};
    if (!security_group_ids.empty()) body["security_groups"] = security_group_ids;
    C2D_ASSIGN_OR_RETURN(id, Create("ports", "port", std::move(body)));
  }
  C2D_ASSIGN_OR_RETURN(Reply r, session_.Call("network", {.path = Path("ports", id)}));
  return ParsePort(r.body.value("port", json::object()));
}

absl::StatusOr<std::vector<Port>> Neutron::PortsOf(const std::string& device_id) {
  C2D_ASSIGN_OR_RETURN(
      Reply r, session_.Call("network", {.path = absl::StrCat(Path("ports"), "?device_id=",
                                                              http::UrlEncode(device_id))}));
  std::vector<Port> out;
  for (const json& p : r.body.value("ports", json::array())) out.push_back(ParsePort(p));
  return out;
}

absl::StatusOr<std::pair<std::string, std::string>> Neutron::CreateFloatingIp(
    const std::string& external_network_id, const std::string& port_id,
    const std::string& description) {
  C2D_ASSIGN_OR_RETURN(
      Reply r,
      session_.Call("network", {.method = "POST",
                                .path = Path("floatingips"),
                                .body = json{{"floatingip",
                                              {{"floating_network_id", external_network_id},
                                               {"port_id", port_id},
                                               {"description", description}}}}}));
  return std::make_pair(r.body.value("/floatingip/id"_json_pointer, ""),
                        r.body.value("/floatingip/floating_ip_address"_json_pointer, ""));
}

absl::StatusOr<std::optional<std::string>> Neutron::FindFloatingIp(const std::string& description) {
  C2D_ASSIGN_OR_RETURN(
      Reply r, session_.Call("network", {.path = absl::StrCat(Path("floatingips"), "?description=",
                                                              http::UrlEncode(description),
                                                              "&fields=id&fields=description")}));
  for (const json& f : r.body.value("floatingips", json::array())) {
    // Filtering by description is an extension: check it was applied.
    if (f.value("description", "") == description) {
      return std::optional<std::string>(f.value("id", ""));
    }
  }
  return std::optional<std::string>();
}

absl::Status Neutron::Delete(const std::string& resource, const std::string& id) {
  auto r = session_.Call("network", {.method = "DELETE", .path = Path(resource, id)});
  return r.ok() || absl::IsNotFound(r.status()) ? absl::OkStatus() : r.status();
}

}  // namespace c2d::cloud::openstack
