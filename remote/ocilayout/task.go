package ocilayout

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/repository"
	"github.com/mooring-dev/mooring/storage"
	"github.com/mooring-dev/mooring/task"
)

// Names of the tasks that export and import layouts; their arguments are
// an ExportArgs and an ImportArgs.
const (
	ExportTask = "export"
	ImportTask = "import"
)

// ExportArgs are the arguments of an ExportTask.
type ExportArgs struct {
	// Repository and Version name the version exported.
	Repository string `json:"repository"`
	Version    int    `json:"version"`
	// Tags is ExportOptions.Tags.
	Tags []string `json:"tags,omitempty"`
	// Path is where the layout is written, absolute: a directory, or a
	// tar archive when it ends in ".tar".
	Path string `json:"path"`
}

// ImportArgs are the arguments of an ImportTask.
type ImportArgs struct {
	// Repository is the repository that gets the new version.
	Repository string `json:"repository"`
	// Path is the layout read, absolute: a directory or a tar archive.
	Path string `json:"path"`
}

// CheckPath returns p cleaned when it is absolute and, with allowed not
// empty, inside one of the allowed directories; else a *errdef.FieldError
// about "path". Tasks run in whichever process claims them, so a relative
// path would mean nothing.
func CheckPath(p string, allowed []string) (string, error) {
	if p == "" {
		return "", errdef.Field("path", "This field may not be blank.")
	}
	if !filepath.IsAbs(p) {
		return "", errdef.Field("path", "Give an absolute path: %q is relative.", p)
	}
	p = filepath.Clean(p)
	if len(allowed) == 0 {
		return p, nil
	}
	// Symbolic links are followed, so that a link inside an allowed
	// directory cannot lead out of it.
	real := resolve(p)
	for _, dir := range allowed {
		if inside(filepath.Clean(dir), p) && inside(resolve(filepath.Clean(dir)), real) {
			return p, nil
		}
	}
	return "", errdef.Field("path", "%s is not inside a directory this server may read and write layouts in (%s).", p, strings.Join(allowed, ", "))
}

// inside reports whether p is below dir.
func inside(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// resolve returns p with the symbolic links of its longest existing
// prefix followed.
func resolve(p string) string {
	rest := ""
	for dir := p; ; dir = filepath.Dir(dir) {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(real, rest)
		}
		if dir == filepath.Dir(dir) {
			return p
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}

// pathKey is the task resource of a layout path: one task at a time
// writes or reads it.
func pathKey(p string) string { return "path:" + p }

// EnqueueExport enqueues an ExportTask. It holds repoKey, naming the
// repository (the server's is its href), and the path, so exports to one
// path run one at a time. A relative path is errdef.ErrInvalid.
func EnqueueExport(ctx context.Context, tasks *task.Store, args ExportArgs, repoKey string) (*task.Task, error) {
	p, err := CheckPath(args.Path, nil)
	if err != nil {
		return nil, err
	}
	args.Path = p
	return tasks.Enqueue(ctx, task.Spec{Name: ExportTask, Args: args, Resources: []string{repoKey, pathKey(p)}})
}

// EnqueueImport enqueues an ImportTask, holding repoKey and the path.
func EnqueueImport(ctx context.Context, tasks *task.Store, args ImportArgs, repoKey string) (*task.Task, error) {
	p, err := CheckPath(args.Path, nil)
	if err != nil {
		return nil, err
	}
	args.Path = p
	return tasks.Enqueue(ctx, task.Spec{Name: ImportTask, Args: args, Resources: []string{repoKey, pathKey(p)}})
}

// ExportHandler returns the handler of ExportTask tasks, which records
// the layout's path as the resource it created.
func ExportHandler(repos *repository.Store, blobs storage.Opener) task.Handler {
	return func(ctx context.Context, t *task.Task, p *task.Progress) error {
		var args ExportArgs
		if err := json.Unmarshal(t.Args, &args); err != nil {
			return errdef.New(errdef.ErrInvalid, "decode export arguments: %v", err)
		}
		res, err := Export(ctx, repos, blobs, repository.VersionRef{RepositoryID: args.Repository, Number: args.Version}, args.Path, ExportOptions{Tags: args.Tags, Progress: p})
		if err != nil {
			return err
		}
		p.Created(res.Path)
		return nil
	}
}

// ImportHandler returns the handler of ImportTask tasks. When an import
// makes a version v, created(v), such as its href, is recorded as the
// resource the task created.
func ImportHandler(repos *repository.Store, blobs BlobStore, created func(*repository.Version) string) task.Handler {
	return func(ctx context.Context, t *task.Task, p *task.Progress) error {
		var args ImportArgs
		if err := json.Unmarshal(t.Args, &args); err != nil {
			return errdef.New(errdef.ErrInvalid, "decode import arguments: %v", err)
		}
		res, err := Import(ctx, repos, blobs, args.Repository, args.Path, ImportOptions{Progress: p})
		if err != nil {
			return err
		}
		if res.Version != nil {
			p.Created(created(res.Version))
		}
		return nil
	}
}
