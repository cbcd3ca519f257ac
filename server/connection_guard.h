// The connection guard: keeps client connections from taking the file
// descriptors that pools and commands need, and keeps the gRPC listener
// alive when the process runs out of them.
//
// Why it exists: gRPC 1.51 (Debian 12) has no limit on concurrent
// connections, and on the first accept4 that fails with EMFILE its TCP
// listener stops for good (later gRPC versions retry); with connections
// holding every fd, pools cannot spawn workers nor commands make pipes.
// The guard interposes accept4 for the process (the executable's
// definition comes before libc's for libgrpc), and for each connection
// the kernel hands out:
//   - keeps it if its fd is below the ceiling (the soft limit of open files
//     now, less the reserve, which takes at most half of it): fds are handed
//     out lowest first, so connections never hold any of the top `reserve` fds,
//     which stay for pools, commands, the store and the metrics server;
//   - else closes it at once (the client sees the connection reset and may
//     retry), counting it refused;
//   - and when accept4 fails for want of fds, frees a spare fd, accepts the
//     waiting connection, closes it, and takes the spare back: the backlog
//     drains, and gRPC is told EAGAIN, never EMFILE.
// Until Install, accept4 passes through unchanged.
//
// Thread-safe: accept4 may run on any thread; Install once, before the
// server starts.
#ifndef REMEX_SERVER_CONNECTION_GUARD_H_
#define REMEX_SERVER_CONNECTION_GUARD_H_

#include <cstdint>

namespace remex::server {

struct ConnectionGuardStats {
  // The fds kept free of connections, and the ceiling they stay under (0
  // before Install).
  int64_t reserve = 0;
  int64_t ceiling = 0;
  // Connections refused since Install.
  int64_t refused = 0;
};

// Starts guarding, with `reserve` fds kept free of connections (at least
// 16; at most half the soft limit of open files, whatever it is then).
void InstallConnectionGuard(int64_t reserve);

ConnectionGuardStats GetConnectionGuardStats();

// The fds a server with `workers` pool workers in all keeps for pools and
// commands: a process worker holds a few (its channel, its pidfd), a
// command run about eight (three pipes, its pidfd, a directory), and the
// store, the metrics server and the janitor some more.
int64_t DefaultFdReserve(int64_t workers);

// Client connections to `port` established now, as /proc/net/tcp and tcp6
// list them (sockets of the network namespace whose local port is
// `port`: only this server listens there). -1 if they cannot be read.
int64_t CountEstablishedConnections(int port);

}  // namespace remex::server

#endif  // REMEX_SERVER_CONNECTION_GUARD_H_
