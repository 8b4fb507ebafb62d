mix = generate:1
prompt_tokens = fixed:32
chars_per_token = 4
shared_prefix = 1
prefix_tokens = 160
max_new_tokens = fixed:32
temperature = 0
