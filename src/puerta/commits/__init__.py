"""What is rolling out: from a Canary to its workload's image, to a repository and commit (by
rules in the policy), to the commit's author (GitHub)."""
