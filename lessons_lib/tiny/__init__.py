"""The tiny offline course model: a 2M-parameter Llama and its tokenizer, built from the course's own corpus."""
