// The deployer's store: the volumes table (store.h, section "volumes").

#include "absl/strings/str_cat.h"
#include "libs/pg/rows.h"
#include "services/deployer/store.h"
#include "services/deployer/store_rows.h"

namespace c2d::deployer {
namespace {

#define C2D_VOLUME_COLUMNS                                                               \
  "id, service_id, project_id, name, size_gb, mount_path, state, coalesce(instance_id, " \
  "''), " C2D_MICROS("created_at")

constexpr pg::Statement kInsertVolume{"volumes_insert", R"sql(
INSERT INTO volumes (id, service_id, project_id, name, size_gb, mount_path)
VALUES ($1, $2, $3, $4, $5, $6))sql"};
constexpr pg::Statement kGetVolume{"volumes_get",
                                   "SELECT " C2D_VOLUME_COLUMNS " FROM volumes WHERE id = $1"};
constexpr pg::Statement kListVolumes{"volumes_list", "SELECT " C2D_VOLUME_COLUMNS R"sql(
FROM volumes WHERE service_id = $1 AND state <> 'deleted' AND ($2 = '' OR id < $2)
ORDER BY id DESC LIMIT $3)sql"};
constexpr pg::Statement kAttachVolume{"volumes_attach", R"sql(
UPDATE volumes SET state = 'attached', provider_ref = $2, instance_id = $3, updated_at = now()
WHERE id = $1 AND state NOT IN ('deleting', 'deleted'))sql"};
constexpr pg::Statement kDetachVolumes{"volumes_detach", R"sql(
UPDATE volumes SET state = 'available', instance_id = NULL, updated_at = now()
WHERE instance_id = $1 AND state = 'attached')sql"};
constexpr pg::Statement kVolumeDeleting{"volumes_deleting", R"sql(
UPDATE volumes SET state = 'deleting', updated_at = now()
WHERE id = $1 AND state <> 'deleted')sql"};
constexpr pg::Statement kVolumeDeleted{"volumes_deleted", R"sql(
UPDATE volumes SET state = 'deleted', instance_id = NULL, deleted_at = now(), updated_at = now()
WHERE id = $1 AND state <> 'deleted')sql"};
constexpr pg::Statement kDeletingVolumes{
    "volumes_all_deleting", "SELECT " C2D_VOLUME_COLUMNS " FROM volumes WHERE state = 'deleting'"};
constexpr pg::Statement kVolumesToDelete{"volumes_to_delete", "SELECT " C2D_VOLUME_COLUMNS R"sql(
FROM volumes WHERE service_id = $1 AND (state = 'deleting' OR ($2 AND state <> 'deleted')))sql"};

v1::Volume RowToVolume(const pqxx::row& r) {
  v1::Volume v;
  v.set_id(r[0].as<std::string>());
  v.set_service_id(r[1].as<std::string>());
  v.set_project_id(r[2].as<std::string>());
  v.set_name(r[3].as<std::string>());
  v.set_size_gb(r[4].as<int>());
  v.set_mount_path(r[5].as<std::string>());
  v.set_state(rows::ParseEnum<v1::VolumeState>("VOLUME_STATE_", r[6].as<std::string>(),
                                               v1::VolumeState_Parse));
  v.set_instance_id(r[7].as<std::string>());
  pg::SetTime(r[8], v.mutable_created_at());
  return v;
}

}  // namespace

absl::StatusOr<v1::Volume> InsertVolume(pg::Tx& tx, const std::string& id,
                                        const v1::CreateVolumeRequest& r) {
  tx.Exec(kInsertVolume, id, r.service_id(), r.project_id(), r.name(), r.size_gb(), r.mount_path());
  return GetVolume(tx, id);
}

absl::StatusOr<v1::Volume> GetVolume(pg::Tx& tx, const std::string& id) {
  pqxx::result r = tx.Exec(kGetVolume, id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("volume ", id, " does not exist"));
  return RowToVolume(r[0]);
}

absl::StatusOr<v1::ListVolumesResponse> ListVolumes(pg::Tx& tx, const std::string& service_id,
                                                    int page_size, const std::string& page_token) {
  v1::ListVolumesResponse out;
  out.set_next_page_token(
      pg::FillPage(tx.Exec(kListVolumes, service_id, page_token, page_size + 1), page_size,
                   [&](const pqxx::row& r) { return (*out.add_volumes() = RowToVolume(r)).id(); }));
  return out;
}

absl::Status AttachVolume(pg::Tx& tx, const std::string& id, const std::string& provider_ref,
                          const std::string& instance_id) {
  tx.Exec(kAttachVolume, id, provider_ref, instance_id);
  return absl::OkStatus();
}

absl::Status DetachVolumes(pg::Tx& tx, const std::string& instance_id) {
  tx.Exec(kDetachVolumes, instance_id);
  return absl::OkStatus();
}

absl::Status MarkVolumeDeleting(pg::Tx& tx, const std::string& id) {
  tx.Exec(kVolumeDeleting, id);
  return absl::OkStatus();
}

absl::Status MarkVolumeDeleted(pg::Tx& tx, const std::string& id) {
  tx.Exec(kVolumeDeleted, id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Volume>> DeletingVolumes(pg::Tx& tx) {
  std::vector<v1::Volume> out;
  for (const auto& r : tx.Exec(kDeletingVolumes)) out.push_back(RowToVolume(r));
  return out;
}

absl::StatusOr<std::optional<v1::Deployment>> DeploymentMounting(pg::Tx& tx,
                                                                 const v1::Volume& volume) {
  // At most one release is live and one in progress; superseded ones that
  // still drain are final already.
  auto list = ListDeployments(tx, volume.service_id(), 20, "");
  if (!list.ok()) return list.status();
  for (const v1::Deployment& d : list->deployments()) {
    if (d.state() != v1::DEPLOYMENT_STATE_PENDING && d.state() != v1::DEPLOYMENT_STATE_DEPLOYING &&
        d.state() != v1::DEPLOYMENT_STATE_LIVE) {
      continue;
    }
    for (const v1::VolumeMount& m : d.spec().volumes()) {
      if (m.volume_id() == volume.id()) return d;
    }
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<v1::Volume>> VolumesToDelete(pg::Tx& tx, const std::string& service_id,
                                                        bool all) {
  std::vector<v1::Volume> out;
  for (const auto& r : tx.Exec(kVolumesToDelete, service_id, all)) out.push_back(RowToVolume(r));
  return out;
}

}  // namespace c2d::deployer
