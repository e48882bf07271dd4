"""Chapter 10 (in progress): multi-granular explanations of a video summariser. The helpers are
here and tested (generator, features, KTS and knapsack, CA-SUM and its training, fragment- and
object-level explanations, Disc± and Sanity Violation); the chapter's notebook, parameters and
claims are not written yet, so the chapter is not in the book."""
