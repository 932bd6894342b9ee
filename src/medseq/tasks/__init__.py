"""Cohorts, labels and subject-level splits, built on the tables that ``medseq.sources`` reads.

Labels live here, never in the readers, so that one read set serves several tasks
(``medseq.tasks.physionet2012``: in-hospital mortality, length of stay), and every split
is by subject (``medseq.tasks.splits``) so that no stay is on both sides.
"""
