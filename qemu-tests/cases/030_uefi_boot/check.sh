#!/bin/sh
# 030 needs no guest checks.
