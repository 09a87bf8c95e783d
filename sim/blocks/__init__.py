"""cocotb benches for the stream blocks (window generator, max pool, requantizer, regroup)."""
