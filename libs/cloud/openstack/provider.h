#pragma once

// The OpenStack provider (C2D_PROVIDER=openstack, DESIGN §4): each c2d
// instance is a Nova server whose cloud-init user data
// (libs/cloud/openstack/cloud_init.h) runs the instance's container, with
// Caddy in front of web apps.
//
// What it makes, by c2d's names (N: a project's network name, I: an
// instance's name):
// - per project network (EnsureNetwork, DESIGN §1 point 23): network,
//   subnet and router N (the router's gateway on the external network, when
//   there is one), security groups N-app (80 and 443 from anywhere, Caddy's
//   remote admin from c2d's networks) and N-db (each database server's
//   port from the project's app instances, every port from c2d's networks,
//   nothing else); a server group
//   N-<service> (anti-affinity) per multi-instance service;
// - per instance: port I (on N, in the group of its role), server I (tags
//   c2d.server=I and the instance's labels), floating IP "I" (web
//   instances, when there is an external network);
// - per c2d volume V: Cinder volume V, attached at boot (block device
//   mapping) to the server that mounts it;
//   per file F put into it (WriteVolumeFile), Swift object "V/F" in
//   files_container, deleted with the volume.
//
// Nothing leaks: every resource is recorded in the Ledger before the call
// that makes it; a Create that fails at any step deletes what that instance
// had made (its volumes excepted: they hold data), and Sweep finishes the
// job of a process that crashed mid-way.
//
// Instance addresses: a web instance answers on <floating IP or fixed IP>:80
// (Caddy, plain HTTP); a database server on <fixed IP>:<its port>.

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libs/cloud/openstack/caddy_admin.h"
#include "libs/cloud/openstack/cinder.h"
#include "libs/cloud/openstack/cloud_init.h"
#include "libs/cloud/openstack/ledger.h"
#include "libs/cloud/openstack/neutron.h"
#include "libs/cloud/openstack/nova.h"
#include "libs/cloud/openstack/swift.h"
#include "libs/cloud/provider.h"

namespace c2d::cloud::openstack {

struct ProviderOptions {
  std::string flavor = "m1.small";  // name or id
  std::string image;                // name or id of a cloud image with cloud-init
  // Name or id; empty: routers without a gateway and no floating IPs (c2d
  // then reaches instances on their fixed addresses, from inside the cloud).
  std::string external_network;
  std::string subnet_cidr = "10.42.0.0/24";
  std::vector<std::string> dns_nameservers;
  // Where c2d's own services are: they reach every instance (health checks,
  // database readiness, Caddy's remote admin).
  std::vector<std::string> control_cidrs;
  std::string key_name;  // an SSH key for operators; empty: none
  std::string server_group_policy = "soft-anti-affinity";
  // c2d's client identity for the remote admin API of web instances'
  // Caddies (caddy_admin.h); empty: no remote admin. Its key is also the
  // secret each instance's admin CA is derived from, so a new identity
  // needs new instances.
  AdminClient admin_client;
  int admin_port = 2021;  // where that API listens on each web instance
  int volume_size_gb = 1;
  // The Swift container of files put into volumes (WriteVolumeFile), and how
  // long the signed link a server fetches one through stays valid.
  std::string files_container = "c2d-volume-files";
  absl::Duration file_link_ttl = absl::Hours(6);
  std::chrono::seconds boot_timeout{600};
  std::chrono::seconds volume_timeout{300};
  std::chrono::seconds delete_timeout{300};
  absl::Duration poll = absl::Seconds(1);
  // The short-lived pull credential for one image; unset: public images.
  std::function<absl::StatusOr<PullCredential>(const std::string& image)> pull_credential;
};

class OpenStackProvider final : public Provider {
 public:
  OpenStackProvider(Session& session, Ledger& ledger, ProviderOptions options);

  absl::StatusOr<Instance> Create(const InstanceSpec& spec) override;
  absl::Status Start(const std::string& ref) override;
  absl::Status Stop(const std::string& ref, std::chrono::seconds grace) override;
  absl::Status Remove(const std::string& ref) override;
  absl::StatusOr<Instance> Inspect(const std::string& ref) override;
  absl::StatusOr<std::vector<Instance>> List(
      const std::map<std::string, std::string>& labels) override;
  absl::Status DeleteVolume(const std::string& volume) override;
  // The file goes to Swift, and its signed link (cloud_init.h,
  // kFileMetaPrefix) to the volume's metadata, which every server made to
  // mount the volume gets as its own, and to the metadata of the server
  // that has it attached now: the server fetches it at its next boot
  // (a Start after a Stop, or its first). The volume is made when missing.
  absl::Status WriteVolumeFile(const std::string& volume, const std::string& name,
                               const std::string& source) override;
  absl::Status EnsureNetwork(const std::string& network) override;
  absl::Status RemoveNetwork(const std::string& network) override;
  // A Cinder volume attaches to one server at a time.
  bool VolumesAttachOnce() const override { return true; }
  // The container's output as the serial console shows it (kLogPrefix
  // lines), polled every 2 s.
  absl::Status FollowLogs(const std::string& ref, std::optional<absl::Time> since,
                          const std::function<bool(const LogLine&)>& on_line,
                          const std::atomic<bool>* cancel) override;
  // Loads them into the server's Caddy over its remote admin API (at its
  // floating IP, else its fixed one). FailedPrecondition: no admin_client;
  // Unavailable: the server is not running, has no address yet, or its
  // Caddy cannot be reached or is not the one its CA vouches for.
  absl::Status ServeCertificates(const std::string& ref,
                                 const std::vector<ServedCertificate>& certs) override;

  // Deletes what instances left behind: resources recorded more than
  // `older_than` ago whose owner (an instance) has no server any more, or
  // whose server never came to be. Returns how many resources it deleted.
  absl::StatusOr<int> Sweep(absl::Duration older_than);
  // Whether web instances take certificates over remote admin (admin_client).
  bool remote_admin() const { return !options_.admin_client.certificate_pem.empty(); }

 private:
  struct NetworkIds {
    std::string network, subnet, app_group, db_group;
  };
  enum class Role { kWeb, kWorker, kDatabase };

  // The ledger's owners of a project network's and a volume's resources.
  static std::string NetworkOwner(const std::string& network);
  static std::string VolumeOwner(const std::string& volume);

  absl::StatusOr<Instance> CreateSteps(const InstanceSpec& spec);
  absl::StatusOr<NetworkIds> Network(const std::string& network);
  // Network's steps, under the ledger's lock on the network.
  absl::Status MakeNetwork(const std::string& network, NetworkIds& ids, std::string& external);
  absl::Status EnsureGroups(const std::string& network, NetworkIds& ids);
  // Opens `port` of the network's database servers to its app instances
  // (once per port and network).
  absl::Status DatabasePort(const std::string& network, const NetworkIds& ids, int port);
  absl::StatusOr<std::vector<BootVolume>> Volumes(const InstanceSpec& spec);
  // The volume, made when missing, once it can be attached.
  absl::StatusOr<BootVolume> EnsureVolume(const std::string& volume);
  // OK once the volume can be attached at boot to `instance`'s server:
  // available (waited for while the server that had it goes), or attached
  // to that server already. FailedPrecondition: another server holds it.
  absl::Status Attachable(const std::string& volume_id, const std::string& instance);
  // The file links (kFileMetaPrefix keys) of `volumes`, for a new server.
  absl::StatusOr<std::map<std::string, std::string>> VolumeFiles(
      const std::vector<BootVolume>& volumes);
  absl::StatusOr<std::string> ServerGroup(const InstanceSpec& spec);
  absl::StatusOr<std::string> BootServer(const InstanceSpec& spec, Role role,
                                         const std::string& port_id,
                                         const std::vector<BootVolume>& volumes);
  absl::StatusOr<BootPlan> Plan(const InstanceSpec& spec, Role role,
                                const std::vector<BootVolume>& volumes);
  absl::StatusOr<std::string> ImageId();
  absl::Status FloatingIp(const std::string& name, const std::string& port_id);
  // Deletes everything `owner` has in the ledger, newest first.
  absl::Status Undo(const std::string& owner);
  absl::Status Delete(const Resource& r);
  absl::Status DeleteVolumeId(const std::string& id);
  absl::StatusOr<std::string> FindId(const Resource& r);
  // Records (kind, name) for owner, makes it with `make` unless it has an
  // id already, and binds the id.
  absl::StatusOr<std::string> Made(const std::string& kind, const std::string& name,
                                   const std::string& owner,
                                   const std::function<absl::StatusOr<std::string>()>& make);
  // Server id -> its floating IP (none without an external network).
  absl::StatusOr<std::map<std::string, std::string>> FloatingAddresses();
  Instance ToInstance(const Server& s, const std::map<std::string, std::string>& floating) const;
  absl::Status RemoveInterface(const std::string& network, std::string id);
  absl::Time Deadline(std::chrono::seconds timeout) const;

  Session& session_;
  Ledger& ledger_;
  const ProviderOptions options_;
  Nova nova_;
  Neutron neutron_;
  Cinder cinder_;
  SwiftObjectStore files_;
  absl::Mutex network_mu_;  // held while a network is made or removed
  absl::Mutex mu_;
  std::map<std::string, NetworkIds> networks_ ABSL_GUARDED_BY(mu_);     // ensured ones
  std::map<std::string, std::set<int>> db_ports_ ABSL_GUARDED_BY(mu_);  // opened ones
  std::string flavor_id_ ABSL_GUARDED_BY(mu_);
  std::string image_id_ ABSL_GUARDED_BY(mu_);
  std::string external_id_ ABSL_GUARDED_BY(mu_);
};

}  // namespace c2d::cloud::openstack
