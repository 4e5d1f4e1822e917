"""Concept corpus, mapping of regions to concept vectors, segments and patches."""

from inficond.concepts.corpus import ConceptWord, CorpusReport, default_corpus, load_corpus
from inficond.concepts.mapping import extend_concepts, map_concepts
from inficond.concepts.patches import build_patches, read_patches
from inficond.concepts.segments import Segment, read_segments, segment_regions, write_segments

__all__ = [
    "ConceptWord", "CorpusReport", "default_corpus", "load_corpus", "map_concepts", "extend_concepts",
    "build_patches", "read_patches", "Segment", "segment_regions", "write_segments", "read_segments",
]
