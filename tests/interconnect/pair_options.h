// The options of an in-process mirror pair used by the interconnect tests: node 1's sender
// mirrors into node 2's receiver, which listens at host:port, both with `key`. Tests add what
// they vary (faults, windows, timeouts, a transport seam) to what these return.
#pragma once

#include <string>

#include "interconnect/mirror_receiver.h"
#include "interconnect/mirror_sender.h"

namespace hafs::interconnect::testing {

inline MirrorReceiverOptions receiver_options_for(const std::string& port, const Key& key,
                                                  LogLevel level = LogLevel::kWarn,
                                                  const std::string& host = "127.0.0.1") {
  MirrorReceiverOptions o;
  o.logger = Logger("node2", level);
  o.listen_host = host;
  o.listen_port = port;
  o.node_id = 2;
  o.partner_node_id = 1;
  o.key = key;
  return o;
}

inline MirrorSenderOptions sender_options_for(const std::string& port, const Key& key,
                                              LogLevel level = LogLevel::kWarn,
                                              const std::string& host = "127.0.0.1") {
  MirrorSenderOptions o;
  o.logger = Logger("node1", level);
  o.partner_host = host;
  o.partner_port = port;
  o.node_id = 1;
  o.partner_node_id = 2;
  o.key = key;
  return o;
}

}  // namespace hafs::interconnect::testing
