// OpenStackProvider: Cinder volumes, attached at boot to the server that
// mounts them, and the files put into them through Swift.

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/cloud/openstack/provider.h"
#include "libs/common/status.h"
#include "libs/objstore/objstore.h"

namespace c2d::cloud::openstack {

absl::StatusOr<std::vector<BootVolume>> OpenStackProvider::Volumes(const InstanceSpec& spec) {
  std::vector<BootVolume> out;
  for (const VolumeMount& m : spec.volumes) {
    C2D_ASSIGN_OR_RETURN(BootVolume v, EnsureVolume(m.volume));
    C2D_RETURN_IF_ERROR(
        WithContext(Attachable(v.volume_id, spec.name), "volume " + m.volume + ": "));
    v.mount_path = m.mount_path;
    out.push_back(std::move(v));
  }
  return out;
}

absl::StatusOr<BootVolume> OpenStackProvider::EnsureVolume(const std::string& volume) {
  C2D_ASSIGN_OR_RETURN(
      std::string id,
      Made(kVolume, volume, VolumeOwner(volume), [&]() -> absl::StatusOr<std::string> {
        C2D_ASSIGN_OR_RETURN(Volume v, cinder_.EnsureVolume(volume, options_.volume_size_gb,
                                                            {{"c2d.volume", volume}}));
        return v.id;
      }));
  auto ready = cinder_.GetVolume(id);
  if (ready.ok() && ready->status != "available" && ready->status != "in-use") {
    ready = cinder_.WaitFor(id, "available", Deadline(options_.volume_timeout), options_.poll);
  }
  C2D_RETURN_IF_ERROR(WithContext(ready.status(), "volume " + volume + ": "));
  return BootVolume{.volume_id = id, .name = volume};
}

absl::Status OpenStackProvider::Attachable(const std::string& volume_id,
                                           const std::string& instance) {
  C2D_ASSIGN_OR_RETURN(Volume now, cinder_.GetVolume(volume_id));
  bool ours = false;
  for (const std::string& id : now.attached_to) {
    auto holder = nova_.GetServer(id);
    if (absl::IsNotFound(holder.status())) continue;
    C2D_RETURN_IF_ERROR(holder.status());
    if (holder->name == instance) {
      ours = true;  // a Create run again: its server has it already
    } else if (holder->task_state != "deleting" && holder->status != "DELETED") {
      return absl::FailedPreconditionError(absl::StrCat(
          "attached to server ", holder->name, "; a volume attaches to one server at a time"));
    }
  }
  if (ours || now.status == "available") return absl::OkStatus();
  // Its last server is gone, or going, and Cinder has not detached it yet.
  return cinder_.WaitFor(volume_id, "available", Deadline(options_.volume_timeout), options_.poll)
      .status();
}

absl::StatusOr<std::map<std::string, std::string>> OpenStackProvider::VolumeFiles(
    const std::vector<BootVolume>& volumes) {
  std::map<std::string, std::string> out;
  for (const BootVolume& v : volumes) {
    C2D_ASSIGN_OR_RETURN(Volume now, cinder_.GetVolume(v.volume_id));
    for (const auto& [key, link] : now.metadata) {
      absl::string_view name = key;
      if (absl::ConsumePrefix(&name, kFileMetaPrefix)) {
        out[FileMetaKey(v.name, name)] = link;
      }
    }
  }
  return out;
}

absl::Status OpenStackProvider::DeleteVolume(const std::string& volume) {
  C2D_RETURN_IF_ERROR(ledger_.Record(kVolume, volume, VolumeOwner(volume)).status());
  return Undo(VolumeOwner(volume));
}

absl::Status OpenStackProvider::WriteVolumeFile(const std::string& volume, const std::string& name,
                                                const std::string& source) {
  if (!IsVolumeFileName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", name, "\" is not a file name"));
  }
  C2D_ASSIGN_OR_RETURN(BootVolume v, EnsureVolume(volume));
  const std::string key = absl::StrCat(volume, "/", name);
  C2D_RETURN_IF_ERROR(ledger_.Record(kObject, key, VolumeOwner(volume)).status());
  C2D_ASSIGN_OR_RETURN(objstore::ObjectInfo stored, objstore::PutFile(files_, key, source));
  C2D_RETURN_IF_ERROR(ledger_.Bind(kObject, key, key));
  C2D_ASSIGN_OR_RETURN(SignedUrl link, files_.SignGet(key, absl::Now() + options_.file_link_ttl));
  const std::string value = FileMetaValue(link.expires, link.signature, stored.sha256);
  // For the servers made to mount it from now on...
  C2D_RETURN_IF_ERROR(cinder_.SetMetadata(v.volume_id, {{kFileMetaPrefix + name, value}}));
  // ...and the one that has it now.
  C2D_ASSIGN_OR_RETURN(Volume now, cinder_.GetVolume(v.volume_id));
  for (const std::string& server : now.attached_to) {
    C2D_RETURN_IF_ERROR(nova_.SetMetadata(server, {{FileMetaKey(volume, name), value}}));
  }
  return absl::OkStatus();
}

absl::Status OpenStackProvider::DeleteVolumeId(const std::string& id) {
  // The server it was attached to may be gone a moment before Cinder has
  // detached it; Cinder deletes only a volume at rest.
  auto now = cinder_.GetVolume(id);
  if (now.ok() && (now->status == "detaching" || now->status == "reserved")) {
    C2D_RETURN_IF_ERROR(
        cinder_.WaitFor(id, "available", Deadline(options_.volume_timeout), options_.poll)
            .status());
  }
  return cinder_.DeleteVolume(id);
}

}  // namespace c2d::cloud::openstack
