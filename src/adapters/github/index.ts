/** Everything GitHub: the client, the reporter the daemon calls, the sticky plan comment, polling. */
export { githubClient, TOKEN_ONLY_NOTICE, DEFAULT_API_URL, parseRepo, type GithubClient, type GithubClientOptions, type GithubAppCredentials } from './client.js';
export { githubReporter, isCommitSha, type GithubReporter, type GithubReporterOptions, type PullRequestPlan, type ReporterQueueOptions, type InstanceReport, type RevisionRejected, type RolloutFinished, type RolloutStarted, type FinishedOutcome } from './reporter.js';
export { upsertPlanComment, planMarker, markerIndex, planCommentBodies, type PlanCommentTarget, type UpsertResult } from './comment.js';
export { splitComment, truncateMarkdown, COMMENT_LIMIT } from './split.js';
export { pollPullRequests, type OpenPullRequest, type PollOptions } from './pulls.js';
