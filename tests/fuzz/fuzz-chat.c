/* fuzz-chat: the JSON reader on untrusted bytes, then every renderer and
 * the JSON writer on whatever parsed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "chat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct aw_json *j = NULL;
	struct aw_chat_buf b = {0};
	struct aw_chat_opts o = {.bos = "<s>", .eos = "</s>", .add_generation_prompt = 1};

	if (aw_json_parse((const char *)data, size, &j, NULL))
		return 0;
	if (aw_json_dump(j, size & 1 ? 4 : -1, &b) == 0) {
		struct aw_json *k = NULL;

		/* what the writer prints parses again (Infinity aside) */
		if (aw_json_parse(b.p, b.len, &k, NULL) == 0)
			aw_json_free(k);
	}
	free(b.p);
	for (int f = AW_CHAT_GENERIC; f <= AW_CHAT_SMOLLM3; f++) {
		struct aw_chat_prompt p;

		if (aw_chat_render((enum aw_chat_family)f, j, &o, &p, NULL) == 0) {
			size_t covered = 0;

			for (size_t s = 0; s < p.n_segs; s++)
				covered += p.segs[s].len;
			if (covered != p.len)
				abort();
			aw_chat_prompt_fini(&p);
		}
	}
	aw_json_free(j);
	return 0;
}
