# agents-prefix.wl cut to fit a 256-token context (stories15m): a shared
# "system prompt" of ~100 tokens, 16 more, 32 new tokens, greedy. With the
# 32000-token synthetic vocabulary a word of this text is ~1.25 tokens, so a
# prompt is ~150 real tokens and prompt + answer stays under 256.
mix = generate:1
prompt_tokens = fixed:16
chars_per_token = 4
shared_prefix = 1
prefix_tokens = 100
max_new_tokens = fixed:32
temperature = 0
