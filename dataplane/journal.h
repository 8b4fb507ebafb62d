/* journal.h — log lines for journald or a terminal, with repeats folded.
 *
 * Under systemd (JOURNAL_STREAM names our standard error) every line goes
 * out as "<N>text" where N is the syslog level: journald reads the prefix
 * as the priority and stamps the time itself, so no timestamp is written.
 * Elsewhere the line is written as is. In both modes an identical line
 * repeated within 'window_us' is counted instead of written, and the count
 * follows as "last message repeated N times" once another line arrives or the
 * window ends: a flood of one error costs one line per window. The daemon
 * routes DPDK's rte_log stream (and so aw_log) through here. No DPDK here.
 */
#ifndef AW_JOURNAL_H
#define AW_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define AW_JOURNAL_LINE 1024

struct aw_journal {
	FILE *out;		    /* where lines go (not owned) */
	bool prefix;		    /* write "<N>" syslog-level prefixes (journald) */
	uint64_t window_us;	    /* repeats of one line within this are folded */
	char last[AW_JOURNAL_LINE]; /* the last line written */
	int last_level;		    /* its level */
	uint64_t last_us;	    /* when it was written */
	uint64_t repeats;	    /* identical lines since, not written */
	char part[AW_JOURNAL_LINE]; /* a line not yet ended by '\n' */
	size_t part_len;
};

/* True when JOURNAL_STREAM (from the environment 'env_value', may be NULL)
 * names the device:inode of file descriptor 'fd': its output goes to journald. */
bool aw_journal_detect(const char *env_value, int fd);

void aw_journal_init(struct aw_journal *j, FILE *out, bool prefix, uint64_t window_us);

/* Write one complete line (no '\n') at syslog 'level' (0..7) at 'now_us'. */
void aw_journal_line(struct aw_journal *j, int level, const char *line, uint64_t now_us);

/* Feed 'len' bytes of text that may hold several lines or part of one (a
 * stdio stream's write); every complete line is written at 'level'. */
void aw_journal_write(struct aw_journal *j, int level, const char *buf, size_t len,
		      uint64_t now_us);

/* Write the pending repeat count once the window of the last line has
 * ended ('now_us'), so a flood that stops is still reported. */
void aw_journal_tick(struct aw_journal *j, uint64_t now_us);

/* Write the pending repeat count (at shutdown). */
void aw_journal_flush(struct aw_journal *j);

#endif
