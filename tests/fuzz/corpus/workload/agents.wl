# agent mix
mix = generate:70 classify:20 ping:10
prompt_tokens = uniform:20:200
max_new_tokens = exp:24
chars_per_token = 3.5
shared_prefix = 0.75
prefix_tokens = 300
sessions = 50
session_reuse = 0.9
deadline_us = 250000
labels = 6
temperature = 0.7
ping_bytes = 32
