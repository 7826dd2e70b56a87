"""One revisit pass: crawl the site, extract each article, filter by topic, drop reprints, queue."""
