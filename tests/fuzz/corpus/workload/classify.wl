mix = classify:1 embed:1
prompt_tokens = normal:100:20
labels = 3
