/* journal.c — journald-friendly log lines with folded repeats (journal.h). */
#include "journal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bool aw_journal_detect(const char *env_value, int fd)
{
	unsigned long long dev, ino;
	struct stat st;

	if (!env_value || sscanf(env_value, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(fd, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void aw_journal_init(struct aw_journal *j, FILE *out, bool prefix, uint64_t window_us)
{
	memset(j, 0, sizeof(*j));
	j->out = out;
	j->prefix = prefix;
	j->window_us = window_us;
	j->last_level = -1;
}

static void put(struct aw_journal *j, int level, const char *line)
{
	if (j->prefix)
		fprintf(j->out, "<%d>%s\n", level, line);
	else
		fprintf(j->out, "%s\n", line);
	fflush(j->out);
}

void aw_journal_flush(struct aw_journal *j)
{
	char msg[64];

	if (!j->repeats)
		return;
	snprintf(msg, sizeof(msg), "last message repeated %" PRIu64 " times", j->repeats);
	put(j, j->last_level, msg);
	j->repeats = 0;
}

void aw_journal_line(struct aw_journal *j, int level, const char *line, uint64_t now_us)
{
	if (level < 0)
		level = 0;
	if (level > 7)
		level = 7;
	if (level == j->last_level && strcmp(line, j->last) == 0 &&
	    now_us - j->last_us < j->window_us) {
		j->repeats++;
		return;
	}
	aw_journal_flush(j);
	put(j, level, line);
	snprintf(j->last, sizeof(j->last), "%s", line);
	j->last_level = level;
	j->last_us = now_us;
}

void aw_journal_write(struct aw_journal *j, int level, const char *buf, size_t len, uint64_t now_us)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\n') {
			j->part[j->part_len] = '\0';
			aw_journal_line(j, level, j->part, now_us);
			j->part_len = 0;
		} else if (j->part_len < sizeof(j->part) - 1) {
			j->part[j->part_len++] = buf[i];
		} /* longer lines are cut at AW_JOURNAL_LINE - 1 bytes */
	}
}

void aw_journal_tick(struct aw_journal *j, uint64_t now_us)
{
	if (j->repeats && now_us - j->last_us >= j->window_us) {
		aw_journal_flush(j);
		j->last_us = now_us;
	}
}
