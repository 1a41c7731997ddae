"""The decode suite: prefill and decode of a served Llama-architecture model, and the roofline."""
