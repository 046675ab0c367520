#pragma once

// The REST API's OpenAPI 3.1 document (services/gateway/openapi.json,
// compiled in), served at GET /v1/openapi.json. A test checks that it
// documents exactly the routes the gateway serves.

namespace c2d::gateway {

const char* OpenApiJson();

}  // namespace c2d::gateway
