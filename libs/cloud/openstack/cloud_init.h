#pragma once

// The cloud-init user data of a Nova server that runs one c2d instance
// (DESIGN §1 points 2, 8, 9, 13):
//
// - Docker Engine (docker.io) runs the instance's container by digest with
//   --restart=on-failure; web instances also get Caddy, in front of the app
//   on 80 (plain, what health checks use) and 443 (TLS with the
//   certificates c2d pushes), whose admin API answers remotely only over
//   mutual TLS to c2d's client certificate, and only on the TLS and HTTPS
//   paths, presenting a certificate from the instance's own CA. Caddy's
//   files belong to its user and are written once it is installed.
// - The registry pull credential (short-lived, for this one image) is a
//   0600 root-only file used by the first pull and then removed, with the
//   docker login it made.
// - The environment is a 0600 file of shell assignments (any value, quoted),
//   read by the boot script; never on a command line.
// - Volumes: the script waits (with a deadline) for each Cinder volume's
//   disk, formats it only when it is blank, mounts it, and records it in
//   fstab.
// - Files c2d puts into a volume (Provider::WriteVolumeFile, e.g. a dump a
//   database server loads at start) reach the server through its metadata,
//   which Nova's metadata service serves the guest: key
//   kFileMetaPrefix + "<volume>:<name>", value "<expires> <signature>
//   <sha256>", the parts of a signed link to <files_url>/<volume>/<name>.
//   At every boot, once the volumes are mounted and before the container
//   starts, kFetchFilesPath fetches each such file it has not fetched yet
//   (the volume's .c2d-fetched keeps the signatures it used), checks its
//   SHA-256 and puts it in place whole, 0644. A link that expired is
//   skipped with a message; any other failure fails the boot, so the
//   container never starts without the file.
// - A systemd unit (c2d-app) runs the script at every boot: the first boot
//   pulls and runs the container, later ones start it again.
// - The container's output goes to the serial console, each line prefixed
//   with kLogPrefix, where Nova's console output shows it (Provider::FollowLogs).
//
// The document is "#cloud-config" followed by JSON (YAML's subset), so no
// value of a tenant's can change its structure.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace c2d::cloud::openstack {

inline constexpr char kLogPrefix[] = "c2d-app| ";

struct BootVolume {
  std::string volume_id;   // Cinder's id: its disk is /dev/disk/by-id/virtio-<first 20>
  std::string name;        // c2d's name of the volume: /srv/c2d/volumes/<name>
  std::string mount_path;  // inside the container
};

struct PullCredential {
  std::string registry;  // host[:port]; empty: the image needs no credential
  std::string username;
  std::string password;
};

struct BootPlan {
  std::string container;  // the container's name (c2d's instance name)
  std::string image;      // registry/repository@sha256:...
  PullCredential pull;
  std::vector<std::string> command;  // empty: the image's own
  std::map<std::string, std::string> env;
  int port = 0;  // the app's port; 0 for a worker
  // Web instances: Caddy in front on 80/443. Otherwise `port` (if any) is
  // published as it is (a database server; security groups decide who reaches it).
  bool behind_caddy = true;
  int64_t memory_bytes = 0;
  int cpu_millis = 0;
  std::vector<BootVolume> volumes;
  std::map<std::string, std::string> hosts;  // extra /etc/hosts lines of the container
  // The certificate (PEM) of the client that may use Caddy's remote admin
  // API; empty: no remote admin.
  std::string admin_client_certificate;
  int admin_port = 2021;
  // With remote admin: the instance's own CA (PEM certificate and key). Its
  // Caddy issues from it the certificate its admin API presents, for the
  // name `container`, and c2d trusts that CA alone for this instance.
  std::string admin_ca_certificate;
  std::string admin_ca_key;
  // The object-store container files into volumes come from; empty: none
  // do (no fetch step).
  std::string files_url;
};

// Where the instance's files are.
inline constexpr char kCaddyConfigPath[] = "/etc/c2d/caddy.json";
inline constexpr char kAdminCaCertPath[] = "/etc/c2d/admin-ca.crt";
inline constexpr char kAdminCaKeyPath[] = "/etc/c2d/admin-ca.key";
inline constexpr char kFetchFilesPath[] = "/usr/local/sbin/c2d-fetch-files";
inline constexpr char kFileMetaPrefix[] = "c2d.file:";
inline constexpr char kMetadataUrl[] = "http://169.254.169.254/openstack/latest/meta_data.json";

// InvalidArgument for what cannot be rendered safely: an environment name
// that is not a shell name, a port out of range, an image or host name
// with characters no image reference or host name has.
absl::StatusOr<std::string> RenderUserData(const BootPlan& plan);

// The Caddy configuration of a web instance (what RenderUserData writes to
// kCaddyConfigPath), as JSON text.
std::string RenderCaddyConfig(const BootPlan& plan);

// A file's metadata entry (see above): kFileMetaPrefix + "<volume>:<name>"
// on a server; on the volume, which knows its own name, kFileMetaPrefix +
// "<name>". The value: "<expires> <signature> <sha256>".
std::string FileMetaKey(absl::string_view volume, absl::string_view name);
std::string FileMetaValue(int64_t expires, absl::string_view signature, absl::string_view sha256);

// `text` as one shell word in single quotes ('it'\''s').
std::string ShellQuote(absl::string_view text);

}  // namespace c2d::cloud::openstack
