"""Chapter 10: multi-granular explanations of a video summariser (CA-SUM), at fragment and
object level, and the measures that test them."""
