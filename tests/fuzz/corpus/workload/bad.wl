mix = generate
bogus = 1
