/* proto.h — the agentwire wire protocol codec (libaw_proto, no DPDK).
 *
 * docs/PROTOCOL.md is the specification; this header is its C contract.
 * One codec serves the daemon, the client library, aw-loadgen and aw-echod,
 * so that both ends check the same rules. Nothing here allocates per packet
 * except the two server-side tables at the end (reassembly and retransmit
 * store), which are bounded by explicit limits and not thread-safe: one per
 * dataplane lcore (flows stay on one lcore).
 *
 * Every datagram starts with this 64-byte header, little-endian:
 *
 *   OFFSET SIZE DESCRIPTION
 *      0     2  magic 0x5741 ('A' 'W' on the wire)
 *      2     1  version (AW_PROTO_VERSION)
 *      3     1  type (enum aw_proto_type)
 *      4     2  flags (AW_PROTO_F_*)
 *      6     2  server_id: echoed/set in every reply
 *      8     8  request_id: client-chosen, unique per client address
 *     16     8  session_id: 0 = none
 *     24     4  seq: response sequence number; RESUME: first seq wanted
 *     28     2  seg_index (< seg_count)
 *     30     2  seg_count (>= 1)
 *     32     4  msg_len: payload bytes of the whole message
 *     36     2  payload_len: payload bytes in this datagram
 *     38     2  seg_size: payload bytes of every segment but the last
 *     40     4  tenant_id (authentication; 0 = none)
 *     44     4  reserved (0)
 *     48    16  mac over header (mac zeroed) and payload (authentication)
 *
 * Errors: functions return 0 (or a length) or -errno; parsers also fill a
 * struct aw_proto_err naming the check that failed (enum aw_proto_fault),
 * the wire error code to answer with, and a message.
 */
#ifndef AW_PROTO_H
#define AW_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define AW_PROTO_MAGIC	 0x5741u
#define AW_PROTO_VERSION 1u
#define AW_PROTO_HDR_LEN 64u
#define AW_PROTO_MAC_LEN 16u

/* Largest UDP payload (IPv4) and so the largest datagram we build. */
#define AW_PROTO_MAX_DGRAM 65507u
/* Default request size limit (reassembly tables can lower it). */
#define AW_PROTO_MAX_MSG (1u << 20)

/* Header flags. */
#define AW_PROTO_F_AUTH	      0x0001u /* tenant_id and mac are valid */
#define AW_PROTO_F_RETRANSMIT 0x0002u /* the sender repeats this datagram */
#define AW_PROTO_F_CONTROL    0x0004u /* reply to CANCEL/RESUME/ACK, outside the stream */
#define AW_PROTO_F_MORE                                                                            \
	0x0008u /* reply fragment: the payload continues in the next
					 * sequenced datagram (TOOL_CALL; see aw_proto_frag) */

enum aw_proto_type {
	/* requests */
	AW_PROTO_GENERATE = 0x01,
	AW_PROTO_CLASSIFY = 0x02,
	AW_PROTO_EMBED = 0x03,
	AW_PROTO_CANCEL = 0x04,
	AW_PROTO_PING = 0x05,
	AW_PROTO_STATS = 0x06,
	AW_PROTO_RESUME = 0x07,
	AW_PROTO_ACK = 0x08,
	/* replies */
	AW_PROTO_DATA = 0x81,
	AW_PROTO_END = 0x82,
	AW_PROTO_ERROR = 0x83,
	AW_PROTO_PONG = 0x84,
	AW_PROTO_PROGRESS = 0x85,
	AW_PROTO_TOOL_CALL = 0x86, /* a parsed tool call, in the sequenced stream */
};

/* Wire error codes (ERROR payload). */
enum aw_proto_code {
	AW_PROTO_ERR_BAD_REQUEST = 1,
	AW_PROTO_ERR_TOO_LONG = 2,
	AW_PROTO_ERR_OVERLOADED = 3,
	AW_PROTO_ERR_UNKNOWN_SESSION = 4,
	AW_PROTO_ERR_DEADLINE = 5,
	AW_PROTO_ERR_INTERNAL = 6,
	AW_PROTO_ERR_UNSUPPORTED = 7,
	AW_PROTO_ERR_UNKNOWN_REQUEST = 8,
	AW_PROTO_ERR_AUTH = 9,
	AW_PROTO_ERR_VERSION = 10,
	AW_PROTO_ERR_MAX_ = 11,
};

/* Finish reasons (END summary). */
enum aw_proto_finish {
	AW_PROTO_FINISH_STOP = 0,
	AW_PROTO_FINISH_LENGTH = 1,
	AW_PROTO_FINISH_DEADLINE = 2,
	AW_PROTO_FINISH_CANCELLED = 3,
	AW_PROTO_FINISH_ERROR = 4,
	AW_PROTO_FINISH_TOOL_CALLS = 5, /* the answer is the TOOL_CALLs sent */
	AW_PROTO_FINISH_MAX_ = 6,
};

/* Which rule a parser found broken; one value per malformed shape. */
enum aw_proto_fault {
	AW_PROTO_FAULT_NONE = 0,
	AW_PROTO_FAULT_TRUNCATED, /* datagram shorter than the header */
	AW_PROTO_FAULT_MAGIC,	  /* wrong magic: do not answer */
	AW_PROTO_FAULT_VERSION,	  /* right magic, unknown version */
	AW_PROTO_FAULT_TYPE,	  /* unknown message type / op */
	AW_PROTO_FAULT_LENGTH,	  /* payload_len disagrees with the datagram */
	AW_PROTO_FAULT_SEGMENT,	  /* seg_count 0 or seg_index >= seg_count */
	AW_PROTO_FAULT_SEGSIZE,	  /* segment sizes inconsistent (in or across datagrams) */
	AW_PROTO_FAULT_TOO_LONG,  /* msg_len beyond the limit */
	AW_PROTO_FAULT_DUPLICATE, /* segment already held (harmless, counted) */
	AW_PROTO_FAULT_EMPTY,	  /* zero-length payload where a body is needed */
	AW_PROTO_FAULT_BODY,	  /* malformed body (field named in the message) */
	AW_PROTO_FAULT_LIMIT,	  /* a table limit (memory, entries) refused it */
	AW_PROTO_FAULT_MAX_,
};

struct aw_proto_err {
	enum aw_proto_fault fault; /* the check that failed */
	uint16_t code;		   /* enum aw_proto_code to answer with, 0 = do not answer */
	struct aw_err err;	   /* errno + message naming the field */
};

/* The decoded header, host byte order. */
struct aw_proto_hdr {
	uint8_t version;      /* AW_PROTO_VERSION when built by us */
	uint8_t type;	      /* enum aw_proto_type */
	uint16_t flags;	      /* AW_PROTO_F_* */
	uint16_t server_id;   /* replying server's id */
	uint64_t request_id;  /* client-chosen */
	uint64_t session_id;  /* 0 = none */
	uint32_t seq;	      /* response sequence number / RESUME start */
	uint16_t seg_index;   /* this segment */
	uint16_t seg_count;   /* segments in the message */
	uint32_t msg_len;     /* whole-message payload bytes */
	uint16_t payload_len; /* this datagram's payload bytes */
	uint16_t seg_size;    /* bytes of every segment but the last */
	uint32_t tenant_id;   /* 0 = unauthenticated */
	uint8_t mac[AW_PROTO_MAC_LEN];
};

/* A byte string pointing into a caller's buffer (not NUL-terminated). */
struct aw_proto_str {
	const char *p;
	uint32_t len;
};

/* ---- header ---------------------------------------------------------------- */

/* Name of a type / error code / finish reason / fault ("?" when unknown). */
const char *aw_proto_type_name(unsigned type);
const char *aw_proto_code_name(unsigned code);
const char *aw_proto_finish_name(unsigned finish);
const char *aw_proto_fault_name(unsigned fault);

/* 1 if 'type' is a request type, 2 if a reply type, 0 if unknown. */
int aw_proto_type_kind(unsigned type);

/* Parse and validate the header of the datagram 'buf' of 'len' bytes against
 * every per-datagram rule of docs/PROTOCOL.md (size, magic, version, type,
 * payload_len == len - 64, segment index/count/size consistency, msg_len <=
 * max_msg; max_msg 0 means AW_PROTO_MAX_MSG). Returns 0 and fills *ret_hdr;
 * the payload starts at buf + AW_PROTO_HDR_LEN. On failure returns -EBADMSG
 * (-EPROTONOSUPPORT for VERSION, -EMSGSIZE for TOO_LONG) and fills *e. */
int aw_proto_hdr_parse(const void *buf, size_t len, uint32_t max_msg, struct aw_proto_hdr *ret_hdr,
		       struct aw_proto_err *e);

/* Write 'h' as 64 wire bytes at 'buf' (magic is added; h->version 0 means
 * AW_PROTO_VERSION). Never fails. */
void aw_proto_hdr_write(void *buf, const struct aw_proto_hdr *h);

/* Build one unsegmented datagram: header 'h' (seg fields and lengths are
 * filled from 'len'), then 'payload'. Returns the datagram length or -ENOSPC
 * when 'cap' is too small, -EMSGSIZE when len > 65535 - 64. */
int aw_proto_build(void *buf, size_t cap, const struct aw_proto_hdr *h, const void *payload,
		   size_t len);

/* Segmentation of a 'msg_len'-byte message into segments of 'seg_size'
 * payload bytes. Returns the number of segments (>= 1) or -EMSGSIZE when more
 * than 65535 segments would be needed, -EINVAL for seg_size 0. */
int aw_proto_seg_count(size_t msg_len, size_t seg_size);

/* Largest segment payload for an MTU (IP + UDP + our header subtracted);
 * ipv6 selects the 40-byte IP header. Returns 0 when mtu is too small. */
size_t aw_proto_seg_size_for_mtu(size_t mtu, int ipv6);

/* Build datagram 'index' of the segmented message 'msg' (header template
 * 'h': type, flags, ids; segment fields are filled). Returns its length,
 * -ENOSPC, -EINVAL (index out of range) or -EMSGSIZE. */
int aw_proto_build_segment(void *buf, size_t cap, const struct aw_proto_hdr *h, const void *msg,
			   size_t msg_len, size_t seg_size, unsigned index);

/* ---- request bodies (GENERATE, CLASSIFY, EMBED) ------------------------------- */

#define AW_PROTO_REQ_FIXED_LEN	   40u
#define AW_PROTO_MAX_STOP	   8u
#define AW_PROTO_MAX_STOP_LEN	   64u
#define AW_PROTO_MAX_LABELS	   256u
#define AW_PROTO_MAX_LABEL_LEN	   256u
#define AW_PROTO_REQF_KEEP_SESSION 0x01u
#define AW_PROTO_REQF_CONTINUE                                                                     \
	0x02u /* the prompt continues session_id: UNKNOWN_SESSION when not held */

enum aw_proto_tag {
	AW_PROTO_TAG_PROMPT = 1,
	AW_PROTO_TAG_STOP = 2,
	AW_PROTO_TAG_LABEL = 3,
	AW_PROTO_TAG_MESSAGES = 4,
	AW_PROTO_TAG_TOOLS = 5,
	AW_PROTO_TAG_RESPONSE_FORMAT = 6,
	AW_PROTO_TAG_TOOL_CHOICE = 7,
	AW_PROTO_TAG_EMBED_OPTS = 8,
	AW_PROTO_TAG_CRITICAL = 0x8000,
};

/* TOOL_CHOICE modes (u8, then the tool's name for NAMED). */
enum aw_proto_tool_choice {
	AW_PROTO_TOOLS_AUTO = 0,     /* the model decides (the default with TOOLS) */
	AW_PROTO_TOOLS_NONE = 1,     /* tools are shown but never called */
	AW_PROTO_TOOLS_REQUIRED = 2, /* at least one call */
	AW_PROTO_TOOLS_NAMED = 3,    /* a call of the named tool */
	AW_PROTO_TOOLS_MAX_ = 4,
};

/* EMBED_OPTS: u8 pooling, u8 flags, u16 reserved (0). */
enum aw_proto_pooling {
	AW_PROTO_POOL_MEAN = 0,
	AW_PROTO_POOL_CLS = 1,
	AW_PROTO_POOL_LAST = 2,
	AW_PROTO_POOL_MAX_ = 3,
};
#define AW_PROTO_EMBED_NORMALIZE 0x01u /* divide by the L2 norm (the default) */
#define AW_PROTO_EMBED_OPTS_LEN	 4u
#define AW_PROTO_MAX_TOOL_NAME	 64u

/* A decoded request body. Strings point into the parsed buffer, which must
 * outlive the struct. aw_proto_req_init() sets the "off" defaults. */
struct aw_proto_req {
	uint8_t priority;	    /* 0 normal, higher first */
	uint8_t req_flags;	    /* AW_PROTO_REQF_* */
	uint32_t max_new_tokens;    /* 0 = server default */
	float temperature;	    /* 0 = greedy */
	uint32_t top_k;		    /* 0 = off */
	float top_p;		    /* 1 = off */
	float min_p;		    /* 0 = off */
	float repetition_penalty;   /* 1 = off */
	uint32_t deadline_us;	    /* 0 = none */
	uint64_t seed;		    /* 0 = server picks */
	struct aw_proto_str prompt; /* PROMPT */
	uint32_t n_stop;
	struct aw_proto_str stop[AW_PROTO_MAX_STOP];
	uint32_t n_labels;
	struct aw_proto_str labels[AW_PROTO_MAX_LABELS];
	struct aw_proto_str messages;	     /* MESSAGES: JSON array, len 0 = absent */
	struct aw_proto_str tools;	     /* TOOLS: JSON array, len 0 = absent */
	struct aw_proto_str response_format; /* RESPONSE_FORMAT: JSON schema, len 0 = absent */
	uint8_t tool_choice;		     /* TOOL_CHOICE: enum aw_proto_tool_choice */
	struct aw_proto_str tool_name;	     /* TOOL_CHOICE NAMED: the tool */
	uint8_t pooling;		     /* EMBED_OPTS: enum aw_proto_pooling */
	uint8_t embed_flags;		     /* EMBED_OPTS: AW_PROTO_EMBED_* */
};

void aw_proto_req_init(struct aw_proto_req *r);

/* Bytes aw_proto_req_build() will write for 'r'. */
size_t aw_proto_req_size(const struct aw_proto_req *r);

/* Encode 'r' as a request body. Returns the length or -ENOSPC / -EINVAL
 * (too many stop strings or labels). */
int aw_proto_req_build(const struct aw_proto_req *r, void *buf, size_t cap);

/* Decode and validate the body of a request of 'type' (GENERATE, CLASSIFY or
 * EMBED). Returns 0 and fills *ret (pointing into 'buf'), or -EBADMSG with
 * *e (fault EMPTY or BODY, code BAD_REQUEST). The JSON in MESSAGES, TOOLS and
 * RESPONSE_FORMAT is not parsed here (the server does, against its model's
 * template): only which TLVs may appear together is checked. */
int aw_proto_req_parse(unsigned type, const void *buf, size_t len, struct aw_proto_req *ret,
		       struct aw_proto_err *e);

/* ---- reply payloads ------------------------------------------------------------- */

#define AW_PROTO_DATA_HDR_LEN  4u
#define AW_PROTO_SUMMARY_LEN   36u
#define AW_PROTO_ERROR_HDR_LEN 8u
#define AW_PROTO_ERROR_MAX_MSG 200u
#define AW_PROTO_PROGRESS_LEN  8u
#define AW_PROTO_MAX_PROBS     AW_PROTO_MAX_LABELS

struct aw_proto_summary {
	uint8_t finish;	  /* enum aw_proto_finish */
	uint8_t model;	  /* which model served it: its generation (1 = loaded at start,
			   * +1 per live swap), as 1 + (generation - 1) % 255; 0 = not said */
	uint16_t n_probs; /* CLASSIFY probabilities */
	uint32_t prompt_tokens;
	uint32_t gen_tokens;
	uint32_t queue_us;
	uint32_t prefill_us;
	uint32_t decode_us;
	uint32_t n_data;      /* DATA datagrams before END */
	uint64_t data_bytes;  /* total DATA output bytes */
	const uint8_t *probs; /* n_probs little-endian floats (parse: into the buffer) */
};

struct aw_proto_error {
	uint16_t code;		 /* enum aw_proto_code */
	uint32_t retry_after_us; /* OVERLOADED hint, 0 = none */
	struct aw_proto_str msg; /* <= AW_PROTO_ERROR_MAX_MSG bytes */
};

struct aw_proto_progress {
	uint32_t n_sent; /* reply datagrams produced so far */
	uint32_t state;	 /* 1 queued, 2 running */
};

/* TOOL_CALL payload:
 *   OFFSET SIZE DESCRIPTION
 *      0     4  n_tokens: generated tokens the call took
 *      4     2  index: calls of the response counted from 0
 *      6     2  name_len (1..AW_PROTO_MAX_TOOL_NAME)
 *      8     4  args_len
 *     12     .  name bytes, then args_len bytes of JSON (the arguments object) */
#define AW_PROTO_TOOL_CALL_HDR_LEN 12u
struct aw_proto_tool_call {
	uint32_t n_tokens;
	uint16_t index;
	struct aw_proto_str name;
	struct aw_proto_str args;
};

/* DATA: u32 n_tokens + bytes. Build returns the payload length or -ENOSPC. */
int aw_proto_data_build(void *buf, size_t cap, uint32_t n_tokens, const void *bytes, size_t len);
int aw_proto_data_parse(const void *buf, size_t len, uint32_t *ret_n_tokens,
			struct aw_proto_str *ret_bytes, struct aw_proto_err *e);

/* END: summary (+ n_probs floats taken from 'probs' as host floats). */
int aw_proto_summary_build(void *buf, size_t cap, const struct aw_proto_summary *s,
			   const float *probs);
int aw_proto_summary_parse(const void *buf, size_t len, struct aw_proto_summary *ret,
			   struct aw_proto_err *e);
/* Probability 'i' (< s->n_probs) of a parsed summary. */
float aw_proto_summary_prob(const struct aw_proto_summary *s, unsigned i);

/* ERROR: message truncated to AW_PROTO_ERROR_MAX_MSG. */
int aw_proto_error_build(void *buf, size_t cap, uint16_t code, uint32_t retry_after_us,
			 const char *msg);
int aw_proto_error_parse(const void *buf, size_t len, struct aw_proto_error *ret,
			 struct aw_proto_err *e);

int aw_proto_progress_build(void *buf, size_t cap, const struct aw_proto_progress *p);

/* TOOL_CALL: build returns the payload length, -ENOSPC or -EINVAL (name
 * empty or too long); parse points into 'buf'. */
int aw_proto_tool_call_build(void *buf, size_t cap, const struct aw_proto_tool_call *c);
int aw_proto_tool_call_parse(const void *buf, size_t len, struct aw_proto_tool_call *ret,
			     struct aw_proto_err *e);
int aw_proto_progress_parse(const void *buf, size_t len, struct aw_proto_progress *ret,
			    struct aw_proto_err *e);

/* ---- reply fragments ---------------------------------------------------------------- */

/* A sequenced reply whose payload does not fit one datagram (today: a
 * TOOL_CALL with long arguments) travels as a run of consecutive datagrams
 * of its type: every one but the last carries AW_PROTO_F_MORE, each has its
 * own seq (so loss and RESUME work per datagram, and END's n_data counts
 * them all), and the payload is their payloads concatenated in seq order.
 * A reassembled payload is at most AW_PROTO_MAX_REPLY_MSG bytes. */
#define AW_PROTO_MAX_REPLY_MSG (1u << 20)

struct aw_proto_frag {
	uint8_t *buf; /* payload so far (owned; aw_proto_frag_fini() frees it) */
	size_t len, cap;
	uint8_t type; /* the run's type, 0 when no run is open */
};

/* Feed the in-order sequenced reply datagram 'h'/'pl' of one response.
 * Returns 1 and sets *ret_p, *ret_len to the whole payload when it completes
 * one ('pl' itself for a datagram outside a run; else the run's buffer,
 * valid until the next call); 0 when it is a fragment with more to come;
 * -EBADMSG (e names it) for AW_PROTO_F_MORE on a type other than TOOL_CALL,
 * a run that another type interrupts (fragments missing: the terminal or a
 * DATA came instead), or a payload beyond AW_PROTO_MAX_REPLY_MSG; -ENOMEM.
 * 'f' starts zeroed. */
int aw_proto_frag_add(struct aw_proto_frag *f, const struct aw_proto_hdr *h, const void *pl,
		      const void **ret_p, size_t *ret_len, struct aw_proto_err *e);
/* Release the run's buffer (f may be reused zeroed). */
void aw_proto_frag_fini(struct aw_proto_frag *f);

/* ---- client address ---------------------------------------------------------------- */

/* A client's transport address as a comparable key (IPv4 in addr[0..3] with
 * family 4, IPv6 in addr[0..15] with family 6; unused bytes zero). */
struct aw_proto_peer {
	uint8_t addr[16];
	uint16_t port;	 /* host order */
	uint16_t family; /* 4 or 6 */
};

/* Fill *ret from a struct sockaddr_in / sockaddr_in6 of 'len' bytes (unused
 * bytes zeroed, so peers compare with memcmp). Returns 0, -EINVAL or
 * -EAFNOSUPPORT. */
int aw_proto_peer_from_sockaddr(const void *sa, size_t len, struct aw_proto_peer *ret);

/* How a server uses the two tables for each request datagram (aw-echod does
 * exactly this; see tools/aw-echod/echod.c):
 *   1. aw_proto_hdr_parse(); on a fault answer e.code (if any) or drop.
 *   2. RESUME / ACK / CANCEL: look the request up in the retransmit store.
 *   3. aw_proto_rtx_state(peer, request_id): known -> a retransmission:
 *      resend the stored replies (or PROGRESS when none yet); never run twice.
 *   4. aw_proto_reasm_add(): 0 -> wait for more segments; 1 -> complete.
 *   5. aw_proto_rtx_open(), run the request, aw_proto_rtx_append() every reply
 *      datagram as it is sent, the terminal one with terminal = 1.
 *   6. Call both _expire() functions from the idle path now and then. */

/* ---- reassembly table (server side) ----------------------------------------------- */

struct aw_proto_reasm_limits {
	uint32_t max_msg;	     /* largest message (bytes) */
	uint32_t max_client_bytes;   /* buffered bytes per client */
	uint64_t max_total_bytes;    /* buffered bytes in the table */
	uint32_t max_client_entries; /* incomplete messages per client */
	uint32_t max_entries;	     /* incomplete messages in the table */
	uint64_t timeout_us;	     /* an incomplete message is dropped after this */
};

/* Defaults from docs/PROTOCOL.md. */
void aw_proto_reasm_limits_default(struct aw_proto_reasm_limits *l);

struct aw_proto_reasm;

struct aw_proto_reasm_stats {
	uint64_t completed;  /* messages delivered */
	uint64_t duplicates; /* duplicate segments ignored */
	uint64_t expired;    /* incomplete messages timed out */
	uint64_t refused;    /* segments refused by a limit */
	uint64_t bad;	     /* segments inconsistent with their message */
	uint32_t entries;    /* incomplete messages held now */
	uint64_t bytes;	     /* bytes held now */
};

/* A complete message. 'data' belongs to the table until
 * aw_proto_reasm_release(); the table may not be used by another thread. */
struct aw_proto_msg {
	struct aw_proto_hdr hdr; /* header of the first segment received; seg fields as sent */
	struct aw_proto_peer peer;
	const uint8_t *data;
	uint32_t len;
	void *priv_; /* table-private */
};

/* Returns NULL on allocation failure. 'l' NULL means the defaults. */
struct aw_proto_reasm *aw_proto_reasm_new(const struct aw_proto_reasm_limits *l);
void aw_proto_reasm_free(struct aw_proto_reasm *r);

/* Feed one parsed datagram ('h' from aw_proto_hdr_parse, 'payload' its
 * payload) from 'peer' at time 'now_us'. A single-segment message is
 * delivered at once without copying ('data' points at 'payload').
 * Returns 1 and fills *ret_msg when the message is complete (release it with
 * aw_proto_reasm_release()), 0 when the segment was stored, or a negative
 * errno with *e: -EALREADY (DUPLICATE, answer nothing), -EBADMSG (SEGSIZE:
 * the whole pending message is dropped), -EMSGSIZE (TOO_LONG), -ENOBUFS
 * (LIMIT: answer OVERLOADED). Expired entries are dropped first. */
int aw_proto_reasm_add(struct aw_proto_reasm *r, const struct aw_proto_peer *peer,
		       const struct aw_proto_hdr *h, const void *payload, uint64_t now_us,
		       struct aw_proto_msg *ret_msg, struct aw_proto_err *e);

/* Give back a message delivered by aw_proto_reasm_add (no-op for unsegmented). */
void aw_proto_reasm_release(struct aw_proto_reasm *r, struct aw_proto_msg *m);

/* Drop incomplete messages older than the timeout; returns how many. */
unsigned aw_proto_reasm_expire(struct aw_proto_reasm *r, uint64_t now_us);

void aw_proto_reasm_get_stats(const struct aw_proto_reasm *r, struct aw_proto_reasm_stats *ret);

/* ---- retransmit store / dedupe table (server side) -------------------------------- */

struct aw_proto_rtx_limits {
	uint32_t max_client_bytes; /* stored reply bytes per client */
	uint64_t max_total_bytes;  /* stored reply bytes in the table */
	uint32_t max_entries;	   /* requests remembered */
	uint64_t retain_us;	   /* a finished response is forgotten after this */
};

void aw_proto_rtx_limits_default(struct aw_proto_rtx_limits *l);

struct aw_proto_rtx;

enum aw_proto_rtx_state {
	AW_PROTO_RTX_QUEUED = 1,   /* accepted, no reply yet */
	AW_PROTO_RTX_RUNNING = 2,  /* replies being produced */
	AW_PROTO_RTX_FINISHED = 3, /* terminal stored */
};

struct aw_proto_rtx_stats {
	uint64_t opened;
	uint64_t evicted; /* finished entries dropped for memory/entries */
	uint64_t trimmed; /* datagrams dropped from running entries for memory */
	uint64_t expired; /* dropped after retain_us */
	uint64_t acked;	  /* dropped on ACK */
	uint32_t entries;
	uint64_t bytes;
};

/* Returns NULL on allocation failure; 'l' NULL means the defaults. */
struct aw_proto_rtx *aw_proto_rtx_new(const struct aw_proto_rtx_limits *l);
void aw_proto_rtx_free(struct aw_proto_rtx *x);

/* Register a new request (peer, request_id) at 'now_us' in state QUEUED.
 * Returns 0, -EEXIST when it is already known (a duplicate: call
 * aw_proto_rtx_state() and resend / answer PROGRESS), or -ENOBUFS when the
 * table is full of unfinished requests (answer OVERLOADED). */
int aw_proto_rtx_open(struct aw_proto_rtx *x, const struct aw_proto_peer *peer, uint64_t request_id,
		      uint64_t now_us);

/* State of a known request and the seq range stored: [*ret_first, *ret_next).
 * Returns the enum aw_proto_rtx_state or -ENOENT. */
int aw_proto_rtx_state(struct aw_proto_rtx *x, const struct aw_proto_peer *peer,
		       uint64_t request_id, uint32_t *ret_first, uint32_t *ret_next);

/* Store a copy of reply datagram 'dgram' (its seq must be the next one; the
 * entry becomes RUNNING, or FINISHED when 'terminal'). When memory is short,
 * the oldest finished entries are evicted, then this entry's oldest
 * datagrams. Returns 0, -ENOENT (unknown request), -EINVAL (seq out of
 * order), -ENOBUFS (larger than the per-client limit even alone: not stored,
 * the stream continues unrecoverable), -ENOMEM. */
int aw_proto_rtx_append(struct aw_proto_rtx *x, const struct aw_proto_peer *peer,
			uint64_t request_id, uint32_t seq, const void *dgram, size_t len,
			int terminal, uint64_t now_us);

/* Stored datagram 'seq' of the request: returns its length and sets *ret_dgram
 * (valid until the next call that modifies the table), or -ENOENT. */
int aw_proto_rtx_get(struct aw_proto_rtx *x, const struct aw_proto_peer *peer, uint64_t request_id,
		     uint32_t seq, const void **ret_dgram);

/* Forget a request (ACK). Returns 0 or -ENOENT. */
int aw_proto_rtx_drop(struct aw_proto_rtx *x, const struct aw_proto_peer *peer,
		      uint64_t request_id);

/* Forget finished responses older than retain_us (and unfinished ones
 * idle for 16 * retain_us); returns how many. */
unsigned aw_proto_rtx_expire(struct aw_proto_rtx *x, uint64_t now_us);

void aw_proto_rtx_get_stats(const struct aw_proto_rtx *x, struct aw_proto_rtx_stats *ret);

#endif
