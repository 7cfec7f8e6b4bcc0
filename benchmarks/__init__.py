"""Side-by-side benchmarks of the course's performance claims (`make bench` runs them all)."""
