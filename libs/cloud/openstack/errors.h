#pragma once

// OpenStack's error answers as absl::Status, in one place.
//
// Every OpenStack service words its errors its own way: Nova, Cinder and
// Glance wrap them in an object named after the fault ({"itemNotFound":
// {"message", "code"}}), Keystone in {"error": {...}}, Neutron in
// {"NeutronError": {"type", "message"}}, Designate flat ({"type",
// "message"}), Swift as plain text. The Status code says what a caller can
// do; the fault's name and the request id travel as payloads (Fault(),
// RequestId()), so callers branch on those, never on message text. The
// message names the call and keeps the service's own words, since users see
// it ("compute: POST /servers: Quota exceeded for instances: ...").
//
// Codes by answer:
//   400                                  InvalidArgument
//   401                                  Unauthenticated
//   403 naming a quota, 413, and 409 with fault OverQuota  ResourceExhausted
//     (a quota: the user must free resources or ask for more)
//   403                                  PermissionDenied
//   404                                  NotFound
//   409                                  Aborted (a conflict: the resource is
//                                        busy or in another state; re-read, retry)
//   422                                  DataLoss (Swift: the body's MD5 is not
//                                        the ETag sent: it arrived damaged)
//   429, 5xx                             Unavailable (retry with backoff)
//   anything else                        Unknown

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "libs/http/client.h"

namespace c2d::cloud::openstack {

// The Status of an error answer (status >= 400). `what` names the call
// ("compute: POST /servers").
absl::Status ErrorStatus(const http::Response& response, absl::string_view what);

// The fault's name of a Status made here ("itemNotFound", "OverQuota",
// "forbidden"), or "".
std::string Fault(const absl::Status& status);
// The x-openstack-request-id of the answer, or "".
std::string RequestId(const absl::Status& status);

}  // namespace c2d::cloud::openstack
