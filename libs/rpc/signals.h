#pragma once

namespace c2d::rpc {

// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts
// later. Call first thing in main(), before gRPC or the metrics exposer start
// threads, so that only WaitForTerminationSignal receives them.
void BlockTerminationSignals();

// Waits for SIGTERM or SIGINT; returns the signal number.
int WaitForTerminationSignal();

}  // namespace c2d::rpc
