/* transport-dpdk.h — libaw_client transport on a DPDK port (built when DPDK
 * is found). See transport-dpdk.c. */
#ifndef AW_TRANSPORT_DPDK_H
#define AW_TRANSPORT_DPDK_H

#include <stdint.h>

#include "client.h"

/* Start the EAL with 'eal_args' (space-separated, e.g. "--no-huge -m 512
 * --no-pci --file-prefix=lg --vdev=net_memif0,role=client,socket=/run/x.sock"),
 * set up its first port with one queue pair, take 'local_cidr' (e.g.
 * "10.97.0.1/24") as our address, and resolve 'server_ip' by ARP (waiting up
 * to 15 s for the link and the answer). Returns 0 and sets *ret (give it to
 * aw_client_new(); closing it stops the port and the EAL), or -errno:
 * -EINVAL (addresses), -ENODEV (no port), -EHOSTUNREACH (no ARP answer).
 * Its fd is -1: poll it by spinning (aw-loadgen forces --busy-poll). */
int aw_dpdk_transport_open(const char *eal_args, const char *local_cidr, const char *server_ip,
			   uint16_t server_port, struct aw_client_transport **ret);

#endif
